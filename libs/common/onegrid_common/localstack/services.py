"""The process table of the local stack: every onegrid service and department simulator.

Data, not code: a new service or simulator is one more row. A row runs an `onegrid`
sub-command (`onegrid run <service> --port N`); while that sub-command does not exist
yet, `onegrid dev up` lists the row as not available instead of starting it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running HTTP process of the stack."""

    name: str
    kind: Literal["service", "simulator"]
    dev_port: int  # fixed port of `onegrid dev`; tests pick free ports instead
    command: tuple[str, ...]  # `onegrid` words before `--port N`
    health_path: str = "/healthz"
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment of this process
    # The Python module that must exist for the row to run (a service's `main` is written
    # by its issue); None: the command alone decides.
    module: str | None = None

    def missing(self, available_commands: frozenset[str]) -> str | None:
        """Why this row cannot run yet (None: it can)."""
        if self.cli_command not in available_commands:
            return f"no `onegrid {self.cli_command}` command"
        if self.module is not None and not _module_exists(self.module):
            return f"no module {self.module}"
        return None

    @property
    def cli_command(self) -> str:
        """The top-level `onegrid` command this row needs (e.g. `run`)."""
        return self.command[0]

    def argv(self, port: int, cli: Sequence[str] | None = None) -> list[str]:
        base = list(cli) if cli is not None else onegrid_cli_argv()
        return [*base, *self.command, "--port", str(port)]

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def health_url(self, port: int) -> str:
        return self.url(port) + self.health_path


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def onegrid_cli_argv() -> list[str]:
    """How to call `onegrid` from any process: the same interpreter, so the same venv."""
    return [sys.executable, "-m", "onegrid_cli.main"]


def _service(name: str, port: int) -> ServiceSpec:
    # `onegrid run <name>` loads onegrid_<name>.main.SERVICE (onegrid_common.service).
    module = f"onegrid_{name.replace('-', '_')}.main"
    return ServiceSpec(
        name=name, kind="service", dev_port=port, command=("run", name), module=module
    )


# Ports 8101-8199 for services, 8201-8299 for simulators (add rows, keep ports unique).
SERVICES: tuple[ServiceSpec, ...] = (
    _service("registry", 8101),
    _service("intake", 8102),
    _service("dispatch", 8103),
    _service("scoring", 8104),
    _service("notification", 8105),
    _service("adapter-urban", 8111),
    _service("adapter-police", 8112),
    _service("adapter-civil", 8113),
    _service("adapter-webhook", 8114),
    # Department simulators (dev and tests only): `onegrid simulate <kind> --port N`.
    *(
        ServiceSpec(
            name=f"sim-{kind}",
            kind="simulator",
            dev_port=port,
            command=("simulate", kind),
            module="onegrid_common.simulators.cli",
        )
        for kind, port in (("urban", 8201), ("police", 8202), ("civil", 8203), ("webhook", 8204))
    ),
    # Notification gateways (dev and tests only); the defaults of notification point here.
    ServiceSpec(
        "sms-gateway", "simulator", 8221, ("simulate", "sms"), module="onegrid_notification.main"
    ),
    ServiceSpec(
        "push-gateway", "simulator", 8222, ("simulate", "push"), module="onegrid_notification.main"
    ),
    ServiceSpec(
        "mail",
        "simulator",
        8223,
        ("simulate", "mail", "--smtp-port", "8225"),
        module="onegrid_notification.main",
    ),
)


def check_table(specs: Sequence[ServiceSpec]) -> None:
    """Reject a table with two rows of one name or one port: a mistake when adding a row."""
    names = [s.name for s in specs]
    ports = [s.dev_port for s in specs]
    dup_names = sorted({n for n in names if names.count(n) > 1})
    dup_ports = sorted({p for p in ports if ports.count(p) > 1})
    if dup_names or dup_ports:
        raise ValueError(f"process table: duplicate names {dup_names} or ports {dup_ports}")
    reserved = {"broker", "s3", "postgres", "redis"}
    if reserved & set(names):
        raise ValueError(f"process table: names {sorted(reserved & set(names))} are reserved")
