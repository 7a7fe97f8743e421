"""The Dockerfile, read statically (no container engine here): any service by build argument."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from onegrid_contracts.catalogue import SERVICES

REPO = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_the_image_is_multi_stage_on_slim_python_311() -> None:
    instructions = _instructions()
    base = next(args for word, args in instructions if word == "ARG" and "PYTHON_IMAGE" in args)
    assert base.split("=", 1)[1] == "python:3.11-slim-bookworm"
    stages = _stages()
    assert len(stages) == 2
    assert stages[0][0][1] == "${PYTHON_IMAGE} AS build"
    assert stages[1][0][1] == "${PYTHON_IMAGE} AS runtime"
    assert ("COPY", "--from=build /app/.venv /app/.venv") in stages[1]


def test_dependencies_come_from_the_lock_for_the_chosen_service_only() -> None:
    build = _stages()[0]
    assert ("ARG", "SERVICE") in build
    sync = " ".join(args for word, args in build if word == "RUN" and "uv sync" in args)
    assert "--frozen" in sync
    assert "--no-dev" in sync
    assert '--package "onegrid-${SERVICE}"' in sync
    assert "--package onegrid-cli" in sync


@pytest.mark.parametrize("service", SERVICES)
def test_every_catalogue_service_is_a_buildable_package(service: str) -> None:
    project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())
    assert project["project"]["name"] == f"onegrid-{service}"
    module = f"onegrid_{service.replace('-', '_')}"
    assert (REPO / "services" / service / module / "__init__.py").is_file()
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    locked = {p["name"]: p for p in lock["package"]}
    assert locked[f"onegrid-{service}"]["source"] == {"editable": f"services/{service}"}
    assert "onegrid-cli" in locked


def test_the_runtime_stage_is_non_root_and_writes_only_to_tmp() -> None:
    runtime = _stages()[1]
    (user,) = [args for word, args in runtime if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 10000
    env = " ".join(args for word, args in runtime if word == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert setting in env
    assert "UV_COMPILE_BYTECODE=1" in " ".join(args for word, args in _stages()[0])
    (entrypoint,) = [args for word, args in runtime if word == "ENTRYPOINT"]
    assert shlex.split(entrypoint.strip("[]").replace(",", " ")) == ["onegrid"]


def test_the_build_context_leaves_out_local_state_but_keeps_the_workspace() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".onegrid", ".tools"} <= ignored
    needed = {"pyproject.toml", "uv.lock", "contracts", "libs", "cli", "services"}
    assert not needed & ignored
