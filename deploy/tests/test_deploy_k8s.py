"""The Kubernetes overlays render, validate against Kubernetes 1.37 and keep the hygiene rules."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from onegrid_cli import deploy
from onegrid_contracts.catalogue import SERVICES

KUBERNETES_VERSION = "1.37.0"
OVERLAYS = ("dev", "prod")
PER_SERVICE_KINDS = (
    "ServiceAccount",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
)
Docs = dict[str, list[dict[str, Any]]]


def _of(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_resource_validates_strictly_against_kubernetes(
    overlay: str, rendered: Docs
) -> None:
    failures: list[str] = []
    for doc in rendered[overlay]:
        if doc["apiVersion"].startswith("kafka.strimzi.io"):
            continue  # custom resources: test_deploy_kafka checks them
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert failures == []


def test_the_kubernetes_check_rejects_a_wrong_type_and_an_unknown_field() -> None:
    specs = deploy.catalogue_topics()
    wrong_type = deploy.deployment(deploy.profile("intake"))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSION, strict=True)
    unknown = copy.deepcopy(deploy.workload(deploy.profile("intake"), specs)[2])
    unknown["spec"]["selectr"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="selectr"):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_catalogue_service_has_its_workload_resources(overlay: str, rendered: Docs) -> None:
    for kind in PER_SERVICE_KINDS:
        names = set(_of(rendered[overlay], kind))
        missing = set(SERVICES) - names
        assert missing == set(), f"{overlay}: no {kind} for {sorted(missing)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_hardened_with_probes_resources_and_spread(overlay: str, rendered: Docs) -> None:
    for name, deployment in _of(rendered[overlay], "Deployment").items():
        pod = _pod(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["serviceAccountName"] == name
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        for container in pod["initContainers"] + pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
        (main,) = pod["containers"]
        assert main["args"] == ["run", name, "--port", str(deploy.HTTP_PORT)]
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        (migrate,) = pod["initContainers"]
        assert migrate["args"] == ["migrate", name]
        assert migrate["image"] == main["image"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_is_committed(overlay: str, rendered: Docs) -> None:
    assert _of(rendered[overlay], "Secret") == {}
    for name, deployment in _of(rendered[overlay], "Deployment").items():
        for container in _pod(deployment)["containers"]:
            for env in container["env"]:
                secretish = any(w in env["name"] for w in ("PASSWORD", "SECRET", "KEYS", "DSN"))
                if secretish:
                    assert "secretKeyRef" in env.get("valueFrom", {}), (name, env["name"])
    config = _of(rendered[overlay], "ConfigMap")["onegrid-config"]["data"]
    assert not [k for k in config if any(w in k for w in ("PASSWORD", "SECRET", "KEYS", "DSN"))]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_setting_names_are_ones_the_services_read(
    overlay: str, rendered: Docs, setting_names: set[str]
) -> None:
    config = _of(rendered[overlay], "ConfigMap")["onegrid-config"]["data"]
    used = set(config)
    for deployment in _of(rendered[overlay], "Deployment").values():
        for container in _pod(deployment)["containers"]:
            used |= {env["name"] for env in container["env"]}
    assert used - setting_names == set()


def test_pii_keys_reach_only_the_services_that_need_them(rendered: Docs) -> None:
    holders = {
        name
        for name, deployment in _of(rendered["prod"], "Deployment").items()
        if any(
            env["name"] == "ONEGRID_SECURITY_PII_KEYS"
            for env in _pod(deployment)["containers"][0]["env"]
        )
    }
    assert holders == {p for p in SERVICES if deploy.profile(p).pii}
    assert "adapter-urban" not in holders


def test_a_default_deny_policy_covers_every_pod(rendered: Docs) -> None:
    deny = _of(rendered["prod"], "NetworkPolicy")["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def _egress_ports(policy: dict[str, Any]) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}


def _ingress_namespaces(policy: dict[str, Any]) -> set[str]:
    return {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" in peer
    }


def _peer_services(rules: list[dict[str, Any]], side: str) -> set[str]:
    """Names of the onegrid services a policy's ingress ("from") or egress ("to") names."""
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in rules
        for peer in rule[side]
        if "app.kubernetes.io/name" in peer.get("podSelector", {}).get("matchLabels", {})
    } & set(SERVICES)


def test_each_service_may_reach_only_what_it_needs(rendered: Docs) -> None:
    policies = _of(rendered["prod"], "NetworkPolicy")
    for service in SERVICES:
        policy = policies[service]
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == service
        profile = deploy.profile(service)
        ports = _egress_ports(policy)
        assert {53, deploy.KAFKA_TLS_PORT, 5432, 4318} <= ports
        assert (6379 in ports) == profile.uses_redis, service
        assert (443 in ports) == (443 in profile.external_ports), service
        assert ("ingress-nginx" in _ingress_namespaces(policy)) == profile.public_api, service
    # A department's adapter is reached by nobody outside unless its department calls back.
    assert "ingress-nginx" not in _ingress_namespaces(policies["adapter-urban"])
    assert "ingress-nginx" in _ingress_namespaces(policies["intake"])
    assert 443 not in _egress_ports(policies["dispatch"])
    # Service to service: only dispatch calls another service (notification, for timelines).
    for service in SERVICES:
        calls = {callee for callee, _ in deploy.profile(service).calls}
        assert _peer_services(policies[service]["spec"]["egress"], "to") == calls, service
        callers = {s for s in SERVICES if service in dict(deploy.profile(s).calls)}
        assert _peer_services(policies[service]["spec"]["ingress"], "from") == callers, service
    assert _peer_services(policies["notification"]["spec"]["ingress"], "from") == {"dispatch"}


def test_autoscaling_never_exceeds_the_partitions_a_service_consumes(rendered: Docs) -> None:
    specs = deploy.catalogue_topics()
    for name, hpa in _of(rendered["prod"], "HorizontalPodAutoscaler").items():
        partitions = deploy.consumed_partitions(name, specs)
        if partitions:
            assert hpa["spec"]["maxReplicas"] <= max(partitions, hpa["spec"]["minReplicas"])
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
    assert _of(rendered["prod"], "HorizontalPodAutoscaler")["dispatch"]["spec"]["maxReplicas"] > 2


def test_prod_images_are_pinned_and_dev_images_are_dev(rendered: Docs) -> None:
    for overlay, check in (
        ("prod", lambda tag: tag not in {"dev", "latest"}),
        ("dev", lambda tag: tag == "dev"),
    ):
        for name, deployment in _of(rendered[overlay], "Deployment").items():
            for container in _pod(deployment)["initContainers"] + _pod(deployment)["containers"]:
                image = container["image"]
                assert ":" in image.rsplit("/", 1)[-1], f"{overlay} {name}: {image} has no tag"
                assert image.rsplit("/", 1)[-1].split(":")[0] == name
                assert check(image.rsplit(":", 1)[1]), f"{overlay} {name}: {image}"


def test_dev_runs_one_replica_and_prod_at_least_two(rendered: Docs) -> None:
    for overlay, low in (("dev", 1), ("prod", 2)):
        for deployment in _of(rendered[overlay], "Deployment").values():
            assert deployment["spec"]["replicas"] == low
        for pdb in _of(rendered[overlay], "PodDisruptionBudget").values():
            assert pdb["spec"]["maxUnavailable"] == 1


def test_no_simulator_is_deployed(rendered: Docs) -> None:
    for overlay in OVERLAYS:
        names = set(_of(rendered[overlay], "Deployment"))
        assert names == set(SERVICES), overlay


def test_every_resource_lands_in_the_overlay_namespace(rendered: Docs) -> None:
    for overlay, namespace in (("dev", "onegrid-dev"), ("prod", "onegrid")):
        for doc in rendered[overlay]:
            if doc["kind"] == "Namespace":
                assert doc["metadata"]["name"] == namespace
                labels = doc["metadata"]["labels"]
                assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
            else:
                assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]


def test_a_service_without_a_profile_is_refused_and_a_new_adapter_gets_adapter_defaults() -> None:
    with pytest.raises(LookupError, match="no deployment profile"):
        deploy.profile("billing")
    adapter = deploy.profile("adapter-housing")
    assert not adapter.public_api
    assert adapter.external_ports == (443,)
