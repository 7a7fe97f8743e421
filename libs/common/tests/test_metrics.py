"""The shared Prometheus metrics: names, labels and what a scrape shows."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from onegrid_common import metrics


def scrape() -> dict[str, list[tuple[dict[str, str], float]]]:
    content, content_type = metrics.render_metrics()
    assert content_type.startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(name: str, **labels: str) -> float:
    for got, v in scrape().get(name, []):
        if got == labels:
            return v
    return 0.0


def test_every_shared_metric_is_exposed_with_the_onegrid_prefix() -> None:
    families = {
        f.name for f in text_string_to_metric_families(metrics.render_metrics()[0].decode())
    }
    expected = {
        "onegrid_http_requests",
        "onegrid_http_request_duration_seconds",
        "onegrid_messages_consumed",
        "onegrid_handler_duration_seconds",
        "onegrid_messages_produced",
        "onegrid_consumer_lag",
        "onegrid_outbox_backlog",
        "onegrid_outbox_oldest_age_seconds",
        "onegrid_dlq_messages",
        "onegrid_deadline_warnings",
        "onegrid_deadline_breaches",
        "onegrid_department_call_errors",
    }
    assert expected <= families
    assert "process_cpu_seconds" in families


def test_consumed_messages_are_counted_by_topic_and_outcome() -> None:
    labels = {"service": "mtest", "topic": "cases.events.v1"}
    before = {
        o: value("onegrid_messages_consumed_total", **labels, outcome=o)
        for o in metrics.CONSUME_OUTCOMES
    }
    metrics.MESSAGES_CONSUMED.labels(**labels, outcome="ok").inc(3)
    metrics.MESSAGES_CONSUMED.labels(**labels, outcome="dead_lettered").inc()
    assert value("onegrid_messages_consumed_total", **labels, outcome="ok") == before["ok"] + 3
    assert (
        value("onegrid_messages_consumed_total", **labels, outcome="dead_lettered")
        == before["dead_lettered"] + 1
    )
    assert (
        value("onegrid_messages_consumed_total", **labels, outcome="retried") == before["retried"]
    )


def test_gauges_report_the_last_value_set() -> None:
    metrics.CONSUMER_LAG.labels(
        service="mtest", group="dispatch", topic="cases.events.v1", partition="3"
    ).set(42)
    metrics.OUTBOX_BACKLOG.labels(service="mtest").set(7)
    metrics.OUTBOX_OLDEST_AGE.labels(service="mtest").set(1.5)
    lag = value(
        "onegrid_consumer_lag",
        service="mtest",
        group="dispatch",
        topic="cases.events.v1",
        partition="3",
    )
    assert lag == 42
    assert value("onegrid_outbox_backlog", service="mtest") == 7
    assert value("onegrid_outbox_oldest_age_seconds", service="mtest") == 1.5


def test_deadline_and_department_counters_are_by_unit_and_adapter() -> None:
    metrics.DEADLINE_BREACHES.labels(service="mtest", unit="URBAN").inc()
    metrics.DEADLINE_WARNINGS.labels(service="mtest", unit="URBAN").inc(2)
    metrics.DEPARTMENT_CALL_ERRORS.labels(service="mtest", adapter="police", reason="timeout").inc()
    metrics.HANDLER_DURATION.labels(service="mtest", topic="t").observe(0.02)
    assert value("onegrid_deadline_breaches_total", service="mtest", unit="URBAN") >= 1
    assert value("onegrid_deadline_warnings_total", service="mtest", unit="URBAN") >= 2
    assert (
        value(
            "onegrid_department_call_errors_total",
            service="mtest",
            adapter="police",
            reason="timeout",
        )
        >= 1
    )
    assert value("onegrid_handler_duration_seconds_count", service="mtest", topic="t") >= 1
