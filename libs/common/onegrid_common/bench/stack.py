"""The local stack a bench runs on: `onegrid dev`'s process table with bench settings.

Same processes and ports as `onegrid dev up` (the services find each other by those
ports), but its own state folder, its own database and Redis database, and:
- department simulators fast (`--speed`): a department accepts and completes in about a
  second instead of minutes; civil reviews take one short simulated day;
- adapters poll their delivery queue and their department's status often;
- intake's per-caller and per-channel rate limits off (the bench is one caller per role);
- notification's quiet hours off: at night (22:00-07:00 city time) every SMS and staff
  push would wait for the morning, and the figures would depend on the hour of the run;
- logs at WARNING (a log line per request would be the main cost).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from onegrid_common.localstack.services import SERVICES, ServiceSpec
from onegrid_common.localstack.stack import StackConfig


@dataclass(frozen=True)
class BenchStackOptions:
    state_dir: Path
    postgres_dsn: str  # the database the bench's stack uses (created, and dropped first)
    redis_url: str
    broker_port: int = 9092
    sim_speed: float = 100.0  # simulated departments this many times faster than life
    adapter_poll_s: float = 0.5
    available_commands: frozenset[str] = frozenset()
    ready_timeout_s: float = 120.0


def _tuned(spec: ServiceSpec, options: BenchStackOptions) -> ServiceSpec:
    # Statements counted on /metrics: the bench reports them per case.
    env = {**spec.env, "ONEGRID_TELEMETRY_LOG_LEVEL": "WARNING", "ONEGRID_DB_COUNT_STATEMENTS": "1"}
    command = spec.command
    if spec.kind == "simulator" and command[:1] == ("simulate",) and len(command) > 1:
        kind = command[1]
        if kind in ("urban", "police", "webhook"):
            command = (*command, "--speed", f"{options.sim_speed:g}")
        elif kind == "civil":
            command = (
                *command,
                "--review-days",
                "1",
                "--day-seconds",
                f"{60 / options.sim_speed:g}",
            )
    if spec.name == "intake":
        env.update(
            {"ONEGRID_INTAKE_REPORTER_RATE_LIMIT": "0", "ONEGRID_INTAKE_CHANNEL_RATE_LIMIT": "0"}
        )
    if spec.name == "notification":
        env["ONEGRID_NOTIFICATION_QUIET_START"] = ""
    if spec.name.startswith("adapter-"):
        # The delivery worker is woken by each queued task's commit: the idle interval
        # (default 0.5 s) only paces retries and budget checks, and the bench keeps it.
        env["ONEGRID_ADAPTER_POLL_INTERVAL_S"] = f"{options.adapter_poll_s:g}"
    return replace(spec, command=command, env=env)


def bench_stack_config(options: BenchStackOptions) -> StackConfig:
    return StackConfig(
        state_dir=options.state_dir,
        broker_port=options.broker_port,
        broker_storage="memory",
        postgres_dsn=options.postgres_dsn,
        redis_url=options.redis_url,
        services=tuple(_tuned(spec, options) for spec in SERVICES),
        available_commands=options.available_commands,
        ready_timeout_s=options.ready_timeout_s,
    )
