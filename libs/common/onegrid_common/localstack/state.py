"""The state folder of the local stack (`.onegrid/` at the repository root, gitignored).

.onegrid/
  pids/<name>.json    one record per process we started (pid + start time + argv + urls)
  logs/<name>.log     all output of that process
  state.json          endpoints chosen by the last `up` (broker, PostgreSQL, Redis)
  env                 the ONEGRID_* environment every process gets (KEY=VALUE lines)
  data/               embedded PostgreSQL data, etc.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from onegrid_common.localstack.procs import ProcessRecord


def repo_root(start: Path | None = None) -> Path:
    """The workspace root: the nearest folder upwards holding uv.lock and pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "uv.lock").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError(f"not inside the onegrid workspace (no uv.lock above {here})")


class StateDir:
    """Files of one local stack. Several stacks (tests) may live side by side in other folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pids = root / "pids"
        self.logs = root / "logs"
        self.data = root / "data"
        self.state_file = root / "state.json"
        self.env_file = root / "env"

    def create(self) -> None:
        for folder in (self.root, self.pids, self.logs, self.data):
            folder.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # -- process records ------------------------------------------------------

    def save_record(self, record: ProcessRecord) -> None:
        _write_atomic(self.pids / f"{record.name}.json", json.dumps(record.to_json(), indent=2))

    def load_record(self, name: str) -> ProcessRecord | None:
        path = self.pids / f"{name}.json"
        try:
            return ProcessRecord.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"corrupt pid file {path}: {exc}; remove it by hand") from exc

    def records(self) -> list[ProcessRecord]:
        if not self.pids.is_dir():
            return []
        found = (self.load_record(p.stem) for p in sorted(self.pids.glob("*.json")))
        return [r for r in found if r is not None]

    def forget(self, name: str) -> None:
        (self.pids / f"{name}.json").unlink(missing_ok=True)

    # -- endpoints and environment ----------------------------------------------

    def load_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise RuntimeError(f"corrupt state file {self.state_file}; remove it by hand")
        return data

    def save_state(self, state: Mapping[str, Any]) -> None:
        _write_atomic(self.state_file, json.dumps(state, indent=2, sort_keys=True))

    def save_env(self, env: Mapping[str, str]) -> None:
        lines = [f"{key}={value}" for key, value in sorted(env.items())]
        _write_atomic(self.env_file, "\n".join(lines) + "\n")

    def load_env(self) -> dict[str, str]:
        try:
            text = self.env_file.read_text()
        except FileNotFoundError:
            return {}
        return parse_env(text)


def parse_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise ValueError(f"line {number}: expected KEY=VALUE, got {line!r}")
        env[key.strip()] = value
    return env


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
