"""The Prometheus metrics every onegrid service exposes on `/metrics`.

One `CollectorRegistry` per process (`REGISTRY`), with module-level metric objects that
the runtime and the services increment directly, e.g.
`MESSAGES_CONSUMED.labels(service="dispatch", topic=t, outcome="ok").inc()`.
Every metric carries a `service` label because tests and the local stack may run several
services in one process and scrape each one separately.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

REGISTRY: Final = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# HTTP latency is small (intake targets p99 < 50 ms), so the low buckets are fine-grained.
_HTTP_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_HANDLER_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ConsumeOutcome = Literal["ok", "duplicate", "retried", "dead_lettered"]
CONSUME_OUTCOMES: Final[tuple[ConsumeOutcome, ...]] = (
    "ok",
    "duplicate",
    "retried",
    "dead_lettered",
)

HTTP_REQUESTS: Final = Counter(
    "onegrid_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION: Final = Histogram(
    "onegrid_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its response.",
    ["service", "method", "route", "status"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)
GROUP_COMMIT_BATCH: Final = Histogram(
    "onegrid_group_commit_batch_size",
    "Requests written together in one transaction by a group-commit writer.",
    ["service", "writer"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)
DB_STATEMENTS: Final = Counter(
    "onegrid_db_statements",
    "Statements sent to PostgreSQL (an executemany counts once: one round trip); counted "
    "only with ONEGRID_DB_COUNT_STATEMENTS.",
    ["service"],
    registry=REGISTRY,
)
MESSAGES_CONSUMED: Final = Counter(
    "onegrid_messages_consumed",
    "Kafka messages consumed, by topic and outcome (ok, duplicate, retried, dead_lettered).",
    ["service", "topic", "outcome"],
    registry=REGISTRY,
)
HANDLER_DURATION: Final = Histogram(
    "onegrid_handler_duration_seconds",
    "Time a message handler took for one message, including its database transaction.",
    ["service", "topic"],
    buckets=_HANDLER_BUCKETS,
    registry=REGISTRY,
)
MESSAGES_PRODUCED: Final = Counter(
    "onegrid_messages_produced",
    "Kafka messages produced (acknowledged by the broker), by topic.",
    ["service", "topic"],
    registry=REGISTRY,
)
CONSUMER_LAG: Final = Gauge(
    "onegrid_consumer_lag",
    "Messages between the group's committed offset and the partition's end offset.",
    ["service", "group", "topic", "partition"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG: Final = Gauge(
    "onegrid_outbox_backlog",
    "Outbox rows written but not yet published.",
    ["service"],
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE: Final = Gauge(
    "onegrid_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when the outbox is empty).",
    ["service"],
    registry=REGISTRY,
)
DLQ_MESSAGES: Final = Counter(
    "onegrid_dlq_messages",
    "Messages sent to the service's dead-letter topic, by the topic they came from.",
    ["service", "topic"],
    registry=REGISTRY,
)
DEADLINE_WARNINGS: Final = Counter(
    "onegrid_deadline_warnings",
    "Deadline warnings (80% of a limit used), by handling unit.",
    ["service", "unit"],
    registry=REGISTRY,
)
DEADLINE_BREACHES: Final = Counter(
    "onegrid_deadline_breaches",
    "Deadline breaches (case escalated and supervised), by handling unit.",
    ["service", "unit"],
    registry=REGISTRY,
)
CASE_SAVE_CONFLICTS: Final = Counter(
    "onegrid_case_save_conflicts",
    "Commands decided again because the case changed while they ran (optimistic save).",
    ["service"],
    registry=REGISTRY,
)
DEPARTMENT_CALL_ERRORS: Final = Counter(
    "onegrid_department_call_errors",
    "Failed calls from an adapter to its department system, by adapter and reason.",
    ["service", "adapter", "reason"],
    registry=REGISTRY,
)


def render_metrics(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The Prometheus text exposition of `registry` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
