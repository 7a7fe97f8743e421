"""docker-compose.yml: valid against the compose specification, complete, same settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from onegrid_contracts.catalogue import SERVICES

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SIMULATED_UNITS = ("urban", "police", "civil")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_validates_against_the_compose_specification(tmp_path: Path) -> None:
    result = _check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE.read_text(encoding="utf-8").replace("condition: service_healthy", "condition: up"),
        encoding="utf-8",
    )
    assert _check_jsonschema(broken).returncode != 0


def test_every_catalogue_service_runs_from_its_own_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICES:
        assert name in services, f"docker-compose.yml has no service {name}"
        service = services[name]
        assert service["build"]["args"]["SERVICE"] == name
        assert service["command"] == ["run", name, "--port", "8000"]
        assert service["read_only"] is True
        assert "/readyz" in " ".join(service["healthcheck"]["test"])


def test_services_start_after_the_init_step_and_healthy_backends(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully"
        for backend in ("kafka", "postgres", "redis"):
            assert depends[backend]["condition"] == "service_healthy", (name, backend)
    init = compose["services"]["init"]
    assert init["build"]["args"]["SERVICE"] == "all"
    script = " ".join(init["entrypoint"])
    assert "onegrid topics apply" in script
    assert "onegrid migrate" in script


def test_backends_are_kraft_kafka_postgres_redis_and_an_otel_collector_with_jaeger(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert not [s for s in services if "zookeeper" in s]
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for name in ("kafka", "postgres", "redis", "jaeger"):
        assert "healthcheck" in services[name], name
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector")
    collector = yaml.safe_load((REPO / "deploy/compose/otel-collector.yaml").read_text())
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"


def test_compose_settings_are_ones_the_services_read(
    compose: dict[str, Any], setting_names: set[str]
) -> None:
    for name, service in compose["services"].items():
        onegrid_vars = {k for k in service.get("environment", {}) if k.startswith("ONEGRID_")}
        assert onegrid_vars - setting_names == set(), name
    env = compose["services"]["intake"]["environment"]
    assert env["ONEGRID_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["ONEGRID_TELEMETRY_OTLP_ENDPOINT"] == "http://otel-collector:4318"


def test_each_department_simulator_is_in_compose(compose: dict[str, Any]) -> None:
    for unit in SIMULATED_UNITS:
        simulator = compose["services"][f"sim-{unit}"]
        assert unit in simulator["command"]
        assert "kafka" not in simulator.get("depends_on", {})
