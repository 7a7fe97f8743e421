import re

import pytest

from onegrid_contracts import catalogue, primitives, registry
from onegrid_contracts.base import PAYLOAD_TYPES
from onegrid_contracts.catalogue import (
    CASES_EVENTS,
    SERVICES,
    all_topics,
    dlq_topic,
    static_topics,
    topic,
    unit_topics,
)
from onegrid_contracts.generate import payload_models


def test_every_topic_name_ends_in_its_major_version() -> None:
    for spec in all_topics(["urban", "police", "civil"]):
        assert re.search(r"\.v[1-9][0-9]*$", spec.name), spec.name
        assert spec.version >= 1


def test_no_topic_is_listed_twice() -> None:
    names = [spec.name for spec in all_topics(["urban", "urban", "police"])]
    assert len(names) == len(set(names))


def test_case_related_topics_are_keyed_by_case_id() -> None:
    keyed = {s.name: s.key for s in all_topics(["urban"])}
    for name in (CASES_EVENTS, "dept.urban.tasks.v1", "dept.urban.replies.v1"):
        assert keyed[name] == "case id"


def test_delete_topics_have_retention_and_compacted_ones_do_not_expire() -> None:
    for spec in all_topics(["urban"]):
        if spec.cleanup_policy == "delete":
            assert spec.retention_ms is not None, spec.name
            assert spec.config()["retention.ms"] == str(spec.retention_ms)
        else:
            assert spec.retention_ms is None
            assert spec.config() == {"cleanup.policy": "compact"}


def test_cases_events_has_many_partitions_and_carries_every_case_event() -> None:
    spec = topic(CASES_EVENTS)
    assert spec.partitions >= 12
    assert "onegrid.case.reported.v1" in spec.payloads
    assert "onegrid.case.closed.v1" in spec.payloads
    assert len(spec.payloads) == len(set(spec.payloads))


def test_unit_topics_are_a_task_and_reply_pair_served_by_the_units_adapter() -> None:
    tasks, replies = unit_topics("urban")
    assert (tasks.name, replies.name) == ("dept.urban.tasks.v1", "dept.urban.replies.v1")
    assert tasks.producers == ("dispatch",)
    assert tasks.consumers == ("adapter-urban",)
    assert replies.producers == ("adapter-urban",)
    assert replies.consumers == ("dispatch",)
    assert "onegrid.dept.task.assigned.v1" in tasks.payloads
    assert "onegrid.dept.reply.completed.v1" in replies.payloads
    assert unit_topics("housing", adapter="adapter-webhook")[0].consumers == ("adapter-webhook",)


@pytest.mark.parametrize("bad", ["Urban", "ur.ban", "", "u", "urban_mgmt", "1urban", "x" * 64])
def test_unit_code_that_cannot_name_a_topic_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="unit code"):
        unit_topics(bad)


def test_unit_code_rule_matches_the_registry_unit_code() -> None:
    unit_pattern = registry.Unit.model_json_schema()["properties"]["code"]["pattern"]
    assert unit_pattern == primitives.UNIT_CODE_PATTERN


def test_every_consuming_service_has_a_dead_letter_topic() -> None:
    names = {s.name for s in static_topics()}
    for service in ("intake", "dispatch", "scoring", "notification", "adapter-urban"):
        assert dlq_topic(service) in names
    assert "dlq.registry.v1" not in names  # registry consumes nothing
    assert set(catalogue.consuming_services()) <= set(SERVICES)


def test_topic_lookup_derives_unit_and_dead_letter_topics() -> None:
    assert topic("dept.police.replies.v1").producers == ("adapter-police",)
    assert topic("dlq.dispatch.v1").key == "original key"
    with pytest.raises(KeyError, match=re.escape("unknown topic 'cases.events.v2'")):
        topic("cases.events.v2")


def test_dlq_topic_refuses_a_bad_service_name() -> None:
    with pytest.raises(ValueError, match="service name"):
        dlq_topic("Dispatch Service")


def test_every_payload_travels_on_exactly_one_kind_of_topic() -> None:
    carried: dict[str, list[str]] = {}
    for spec in all_topics(["unit"]):
        for ce_type in spec.payloads:
            carried.setdefault(ce_type, []).append(spec.name)
    assert set(carried) == set(payload_models())
    assert all(len(topics) == 1 for topics in carried.values()), carried
    assert set(payload_models()) <= set(PAYLOAD_TYPES)


def test_registry_entities_name_the_catalogue_topic_that_carries_them() -> None:
    for spec in static_topics():
        for ce_type in spec.payloads:
            model = PAYLOAD_TYPES[ce_type]
            if issubclass(model, registry.RegistryEntity):
                assert model.topic == spec.name


def test_topic_spec_refuses_a_name_without_version() -> None:
    with pytest.raises(ValueError, match=r"ending in \.vN"):
        catalogue.TopicSpec("cases.events", "case id", 1, "delete", 1000 * 3600, (), ())


def test_the_webhook_adapters_units_have_their_topic_pair_owned_by_adapter_webhook() -> None:
    assert "adapter-webhook" in SERVICES
    specs = {spec.name: spec for spec in all_topics()}
    tasks, replies = specs["dept.housing.tasks.v1"], specs["dept.housing.replies.v1"]
    assert tasks.consumers == ("adapter-webhook",)
    assert replies.producers == ("adapter-webhook",)
    assert unit_topics("housing")[0].consumers == ("adapter-webhook",)
    assert "dlq.adapter-webhook.v1" in specs
    # Native units keep their own adapters.
    assert specs["dept.civil.tasks.v1"].consumers == ("adapter-civil",)
