"""Strimzi topics and users: generated from the catalogue, committed, least privilege."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from onegrid_cli import deploy
from onegrid_common.broker import group_id
from onegrid_common.settings import KafkaSettings
from onegrid_contracts.catalogue import (
    NATIVE_ADAPTER_UNITS,
    SERVICES,
    WEBHOOK_ADAPTER,
    WEBHOOK_ADAPTER_UNITS,
    dlq_topic,
    unit_replies_topic,
    unit_tasks_topic,
)

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}

# A structural check of the Strimzi v1 resources we write (fields and enums of Strimzi's
# CRDs); the CRDs themselves are not shipped by any package reachable offline.
_META = {
    "type": "object",
    "required": ["name", "labels"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {
            "type": "object",
            "required": ["strimzi.io/cluster"],
            "additionalProperties": {"type": "string"},
        },
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_ACL = {
    "type": "object",
    "required": ["resource", "operations"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["allow", "deny"]},
        "host": {"type": "string"},
        "resource": {
            "type": "object",
            "required": ["type"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                "name": {"type": "string", "minLength": 1},
                "patternType": {"enum": ["literal", "prefix"]},
            },
        },
        "operations": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {
                "enum": [
                    "Read",
                    "Write",
                    "Create",
                    "Delete",
                    "Alter",
                    "Describe",
                    "ClusterAction",
                    "AlterConfigs",
                    "DescribeConfigs",
                    "IdempotentWrite",
                    "All",
                ]
            },
        },
    },
}
STRIMZI_SCHEMAS: dict[str, dict[str, Any]] = {
    "KafkaTopic": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1"},
            "kind": {"const": "KafkaTopic"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["topicName", "partitions", "replicas"],
                "additionalProperties": False,
                "properties": {
                    "topicName": {"type": "string"},
                    "partitions": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                    "config": {"type": "object"},
                },
            },
        },
    },
    "KafkaUser": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1"},
            "kind": {"const": "KafkaUser"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["authentication", "authorization"],
                "additionalProperties": False,
                "properties": {
                    "authentication": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["tls", "tls-external", "scram-sha-512"]}},
                    },
                    "authorization": {
                        "type": "object",
                        "required": ["type", "acls"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "simple"},
                            "acls": {"type": "array", "items": _ACL},
                        },
                    },
                    "quotas": {"type": "object"},
                },
            },
        },
    },
    "KafkaNodePool": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["replicas", "roles", "storage"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 0},
                    "roles": {"type": "array", "items": {"enum": ["controller", "broker"]}},
                    "storage": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["ephemeral", "persistent-claim", "jbod"]}},
                    },
                },
            },
        },
    },
    "Kafka": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object",
                "required": ["kafka", "entityOperator"],
                "properties": {
                    "kafka": {
                        "type": "object",
                        "required": ["listeners"],
                        "properties": {
                            "listeners": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["name", "port", "type", "tls"],
                                    "properties": {
                                        "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
                                        "port": {"type": "integer", "minimum": 9092},
                                        "tls": {"type": "boolean"},
                                    },
                                },
                            },
                            "authorization": {"properties": {"type": {"enum": ["simple"]}}},
                            "config": {"type": "object"},
                        },
                    },
                    "entityOperator": {
                        "type": "object",
                        "required": ["topicOperator", "userOperator"],
                    },
                },
            },
        },
    },
}


def _strimzi(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and d["apiVersion"].startswith("kafka.strimzi")]


def _expected_access() -> dict[str, tuple[set[str], set[str]]]:
    """principal → (topics it reads, topics it writes), straight from the catalogue."""
    access: dict[str, tuple[set[str], set[str]]] = {}
    for spec in deploy.catalogue_topics():
        for consumer in (*spec.consumers, *spec.readers):
            access.setdefault(consumer, (set(), set()))[0].add(spec.name)
        for producer in spec.producers:
            access.setdefault(producer, (set(), set()))[1].add(spec.name)
    return access


def _granted(user: dict[str, Any]) -> tuple[set[str], set[str]]:
    reads: set[str] = set()
    writes: set[str] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        if resource["type"] != "topic":
            continue
        assert resource["patternType"] == "literal", f"{user['metadata']['name']}: {acl}"
        if "Read" in acl["operations"]:
            reads.add(resource["name"])
        if "Write" in acl["operations"]:
            writes.add(resource["name"])
    return reads, writes


def test_committed_manifests_are_what_the_generator_writes() -> None:
    files = deploy.render()
    stale = deploy.stale_files(REPO / deploy.GENERATED_DIR, files)
    assert stale == [], f"run `onegrid deploy k8s` and commit: {stale}"


def test_deploy_k8s_check_names_a_drifted_file_and_a_rewrite_fixes_it(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    shutil.copytree(REPO / deploy.GENERATED_DIR, out)
    (out / "kafka-topics.yaml").write_text("# edited by hand\n", encoding="utf-8")
    (out / "leftover.yaml").write_text("{}\n", encoding="utf-8")
    runner = CliRunner()

    checked = runner.invoke(deploy.app, ["k8s", "--out", str(out), "--check"])
    assert checked.exit_code == 1
    assert "kafka-topics.yaml" in checked.output
    assert "leftover.yaml" in checked.output

    assert runner.invoke(deploy.app, ["k8s", "--out", str(out)]).exit_code == 0
    assert not (out / "leftover.yaml").exists()
    assert runner.invoke(deploy.app, ["k8s", "--out", str(out), "--check"]).exit_code == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_topics_equal_the_catalogue(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    topics = {t["spec"]["topicName"]: t for t in _strimzi(rendered[overlay], "KafkaTopic")}
    specs = {spec.name: spec for spec in deploy.catalogue_topics()}
    assert sorted(topics) == sorted(specs)
    for name, spec in specs.items():
        manifest = topics[name]
        assert manifest["metadata"]["name"] == name
        assert manifest["spec"]["partitions"] == spec.partitions, name
        config = manifest["spec"]["config"]
        for key, value in spec.config().items():
            assert str(config[key]) == value, f"{name} {key}"
        if spec.retention_ms is None:
            assert "retention.ms" not in config, name


def test_every_native_adapter_unit_has_its_task_and_reply_topics() -> None:
    names = {spec.name for spec in deploy.catalogue_topics()}
    for unit in NATIVE_ADAPTER_UNITS:
        assert {unit_tasks_topic(unit), unit_replies_topic(unit)} <= names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_user_acls_equal_the_catalogue_producers_and_consumers(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    users = {u["metadata"]["name"]: u for u in _strimzi(rendered[overlay], "KafkaUser")}
    expected = _expected_access()
    assert sorted(users) == sorted(deploy.kafka_user_name(p) for p in expected)
    for principal, access in expected.items():
        assert _granted(users[deploy.kafka_user_name(principal)]) == access, principal


def test_every_service_has_a_kafka_user() -> None:
    users = {p for p in deploy.kafka_principals(deploy.catalogue_topics())}
    assert set(SERVICES) <= users


@pytest.mark.parametrize("unit", ["urban", "police", "civil"])
def test_an_adapter_reads_only_its_task_topic_and_writes_only_its_replies_and_dead_letters(
    unit: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    service = f"adapter-{unit}"
    user = next(
        u
        for u in _strimzi(rendered["prod"], "KafkaUser")
        if u["metadata"]["name"] == deploy.kafka_user_name(service)
    )
    reads, writes = _granted(user)
    assert reads == {unit_tasks_topic(unit)}
    assert writes == {unit_replies_topic(unit), dlq_topic(service)}


def test_the_webhook_adapter_reads_and_writes_the_topics_of_the_units_it_serves(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    user = next(
        u
        for u in _strimzi(rendered["prod"], "KafkaUser")
        if u["metadata"]["name"] == deploy.kafka_user_name(WEBHOOK_ADAPTER)
    )
    reads, writes = _granted(user)
    assert "housing" in WEBHOOK_ADAPTER_UNITS
    assert reads == {unit_tasks_topic(u) for u in WEBHOOK_ADAPTER_UNITS}
    assert writes == {unit_replies_topic(u) for u in WEBHOOK_ADAPTER_UNITS} | {
        dlq_topic(WEBHOOK_ADAPTER)
    }


def test_consumer_group_acls_cover_exactly_the_services_own_groups(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for user in _strimzi(rendered["prod"], "KafkaUser"):
        principal = user["metadata"]["name"].removeprefix("onegrid-")
        groups = [
            a for a in user["spec"]["authorization"]["acls"] if a["resource"]["type"] == "group"
        ]
        # Readers (RegistryView) read without a group: only consumers get the group ACL.
        consumes = any(principal in spec.consumers for spec in deploy.catalogue_topics())
        if not consumes:
            assert groups == [], principal
            continue
        (acl,) = groups
        prefix = acl["resource"]["name"]
        assert acl["resource"]["patternType"] == "prefix"
        kafka = KafkaSettings()
        assert group_id(principal, "cases", kafka).startswith(prefix)
        other = next(s for s in SERVICES if s != principal)
        assert not group_id(other, "cases", kafka).startswith(prefix), (principal, other)


def test_no_user_gets_cluster_wildcard_or_all_rights(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for user in _strimzi(rendered["prod"], "KafkaUser"):
        for acl in user["spec"]["authorization"]["acls"]:
            assert acl["resource"]["type"] in {"topic", "group"}, user["metadata"]["name"]
            assert acl["resource"].get("name") not in {None, "*", ""}
            assert not {"All", "Alter", "Delete", "Create"} & set(acl["operations"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_strimzi_resources_match_the_strimzi_structure(
    overlay: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    docs = [d for d in rendered[overlay] if d["apiVersion"].startswith("kafka.strimzi.io")]
    assert {d["kind"] for d in docs} == STRIMZI_KINDS
    (cluster,) = _strimzi(docs, "Kafka")
    for doc in docs:
        jsonschema.validate(doc, STRIMZI_SCHEMAS[doc["kind"]])
        if doc["kind"] != "Kafka":
            assert doc["metadata"]["labels"]["strimzi.io/cluster"] == cluster["metadata"]["name"]


def test_the_strimzi_check_rejects_a_misspelt_operation_and_an_unknown_field() -> None:
    specs = deploy.catalogue_topics()
    user = deploy.kafka_user("dispatch", specs)
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Reed"]
    with pytest.raises(jsonschema.ValidationError, match="Reed"):
        jsonschema.validate(user, STRIMZI_SCHEMAS["KafkaUser"])
    topic = deploy.kafka_topic(specs[0])
    topic["spec"]["partition"] = 3
    with pytest.raises(jsonschema.ValidationError, match="partition"):
        jsonschema.validate(topic, STRIMZI_SCHEMAS["KafkaTopic"])


def test_dev_topics_have_one_replica_and_prod_topics_three(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for overlay, replicas, min_isr in (("dev", 1, "1"), ("prod", 3, "2")):
        for topic in _strimzi(rendered[overlay], "KafkaTopic"):
            assert topic["spec"]["replicas"] == replicas
            assert topic["spec"]["config"]["min.insync.replicas"] == min_isr
