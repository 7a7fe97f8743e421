"""The whole local system on one machine: `onegrid dev up|down|status`.

`up` is idempotent: what runs (pid file + same start time + answering) is kept, what
is missing is started. The broker forgets everything when it restarts in memory mode,
so a broker found dead means every process that talks to it is restarted too.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.errors import KafkaError

from onegrid_common.kafka_admin import BrokerUnavailableError, TopicError, ensure_topics
from onegrid_common.localstack import components as c
from onegrid_common.localstack.procs import (
    ProcessRecord,
    is_alive,
    port_accepts,
    stop,
)
from onegrid_common.localstack.services import (
    SERVICES,
    ServiceSpec,
    check_table,
    onegrid_cli_argv,
)
from onegrid_common.localstack.state import StateDir
from onegrid_contracts.catalogue import TopicSpec, static_topics

INFRA = ("broker", "s3", "postgres", "redis")
# Stopped in this order: first what talks to the infrastructure, then the infrastructure.
_STOP_ORDER_LAST = ("broker", "s3", "redis", "postgres")


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    broker_port: int = 9092
    broker_storage: Literal["memory", "s3"] = "memory"
    s3_port: int = 9094
    # The configured PostgreSQL and Redis, used when they answer.
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/onegrid"
    redis_url: str = "redis://127.0.0.1:6379/0"
    use_configured: bool = True  # False: always start the embedded ones (tests of the fallback)
    embedded_postgres_port: int = 55432
    embedded_redis_port: int = 56379
    services: tuple[ServiceSpec, ...] = SERVICES
    service_ports: Mapping[str, int] = field(default_factory=dict)  # overrides of dev_port
    available_commands: frozenset[str] = frozenset()  # `onegrid` commands that exist
    cli: tuple[str, ...] = field(default_factory=lambda: tuple(onegrid_cli_argv()))
    ready_timeout_s: float = 60.0
    stop_grace_s: float = 10.0
    die_with_parent: bool = False  # tests: children die with the test process


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    url: str | None
    healthy: bool
    source: Literal["started", "configured"]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "url": self.url,
            "healthy": self.healthy,
            "source": self.source,
        }


@dataclass
class UpResult:
    env: dict[str, str]
    started: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    # Rows that cannot run yet, with the reason (their command or module does not exist yet).
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def catalogue_topics() -> list[TopicSpec]:
    """The static topics of the catalogue. Unit topics come from the registry's adapter
    units and are applied by `onegrid topics apply` once the registry is seeded."""
    return static_topics()


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        check_table(config.services)
        self.config = config
        self.state = StateDir(config.state_dir)

    # -- infrastructure, each step idempotent -----------------------------------------------

    def _alive(self, name: str) -> ProcessRecord | None:
        record = self.state.load_record(name)
        if record is None:
            return None
        if is_alive(record) and (record.port is None or port_accepts(record.port)):
            return record
        return None

    def ensure_s3(self) -> str:
        record = self._alive("s3")
        if record is None:
            record = c.start_s3(
                self.state, self.config.s3_port, die_with_parent=self.config.die_with_parent
            )
        assert record.url is not None
        return record.url

    def ensure_broker(self) -> tuple[str, bool]:
        """The bootstrap address, and whether the broker was (re)started now."""
        self.state.create()
        s3_lost = self.config.broker_storage == "s3" and self._alive("s3") is None
        record = self._alive("broker")
        if record is not None and s3_lost:
            stop(record, grace_s=self.config.stop_grace_s)  # its storage is gone
            record = None
        if record is not None:
            return f"127.0.0.1:{record.port}", False
        s3 = self.ensure_s3() if self.config.broker_storage == "s3" else None
        record = c.start_broker(
            self.state,
            self.config.broker_port,
            s3_endpoint=s3,
            die_with_parent=self.config.die_with_parent,
            timeout_s=self.config.ready_timeout_s,
        )
        return f"127.0.0.1:{record.port}", True

    def ensure_postgres(self) -> tuple[str, Literal["started", "configured"]]:
        """DSN of the onegrid database (created if missing), and where the server comes from."""
        self.state.create()
        database = c.database_of(self.config.postgres_dsn)
        record = self._alive("postgres")
        source: Literal["started", "configured"] = "started"
        if record is not None:
            assert record.url is not None
            dsn = c.with_database(record.url, database)
        elif self.config.use_configured and c.postgres_answers(self.config.postgres_dsn):
            dsn, source = self.config.postgres_dsn, "configured"
        else:
            record = c.start_embedded_postgres(
                self.state,
                self.config.embedded_postgres_port,
                die_with_parent=self.config.die_with_parent,
                timeout_s=self.config.ready_timeout_s,
            )
            assert record.url is not None
            dsn = c.with_database(record.url, database)
        try:
            c.ensure_database(dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise c.ComponentError(
                "postgres", f"cannot create database {database} at {mask_password(dsn)}: {exc}"
            ) from exc
        return dsn, source

    def ensure_redis(self) -> tuple[str, Literal["started", "configured"]]:
        self.state.create()
        record = self._alive("redis")
        if record is not None:
            assert record.url is not None
            return record.url, "started"
        if self.config.use_configured and c.redis_answers(self.config.redis_url):
            return self.config.redis_url, "configured"
        record = c.start_valkey(
            self.state,
            self.config.embedded_redis_port,
            die_with_parent=self.config.die_with_parent,
        )
        assert record.url is not None
        return record.url, "started"

    # -- the whole stack -------------------------------------------------------------------

    def service_port(self, spec: ServiceSpec) -> int:
        return self.config.service_ports.get(spec.name, spec.dev_port)

    def up(
        self,
        *,
        seed_demo: bool = False,
        topics: Sequence[TopicSpec] | None = None,
        say: Callable[[str], None] = lambda _line: None,
    ) -> UpResult:
        self.state.create()
        broker_lost = self.state.load_record("broker") is not None and self._alive("broker") is None
        bootstrap, broker_started = self.ensure_broker()
        say(f"broker    {bootstrap} ({'started' if broker_started else 'running'})")
        if broker_lost or broker_started:
            # Clients of a restarted memory broker loop on unknown topics or skip messages.
            for spec in self.config.services:
                record = self.state.load_record(spec.name)
                if record is not None:
                    stop(record, grace_s=self.config.stop_grace_s)
                    self.state.forget(spec.name)
        dsn, pg_source = self.ensure_postgres()
        say(f"postgres  {mask_password(dsn)} ({pg_source})")
        redis_url, redis_source = self.ensure_redis()
        say(f"redis     {redis_url} ({redis_source})")

        env = {
            "ONEGRID_ENVIRONMENT": "dev",
            "ONEGRID_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            # tansu answers InitProducerId with an error; the inbox gives exactly-once effect.
            "ONEGRID_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "ONEGRID_DB_DSN": dsn,
            "ONEGRID_REDIS_URL": redis_url,
            # Without a collector every service appends its spans here (`onegrid trace`).
            "ONEGRID_TELEMETRY_TRACES_FILE": str(
                (self.config.state_dir / "traces.jsonl").absolute()
            ),
        }
        for spec in self.config.services:
            if spec.name == "notification":
                # Dispatch merges the notifications into a case's timeline.
                env["ONEGRID_DISPATCH_NOTIFICATION_URL"] = spec.url(self.service_port(spec))
        self.state.save_env(env)
        self.state.save_state(
            {
                "broker": {"bootstrap": bootstrap, "storage": self.config.broker_storage},
                "postgres": {"dsn": dsn, "source": pg_source},
                "redis": {"url": redis_url, "source": redis_source},
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )
        result = UpResult(env=env)

        specs = list(topics) if topics is not None else catalogue_topics()
        try:
            c.run_async(ensure_topics(bootstrap, specs))
        except (TopicError, BrokerUnavailableError, KafkaError) as exc:
            raise c.ComponentError("topics", str(exc), self.state.log_path("broker")) from exc
        say(f"topics    {len(specs)} from the catalogue")

        if "migrate" in self.config.available_commands:
            self.run_cli("migrate", ["migrate"], env)
            say("migrate   done")
        else:
            result.notes.append("`onegrid migrate` does not exist yet: no migrations ran")

        self._start_services(env, result)

        if seed_demo:
            if "seed" in self.config.available_commands:
                self.run_cli("seed", ["seed", "demo-city"], env)
                say("seed      demo city")
            else:
                result.notes.append("`onegrid seed demo-city` does not exist yet: nothing seeded")
        return result

    def _start_services(self, env: Mapping[str, str], result: UpResult) -> None:
        waiting: list[ProcessRecord] = []
        for spec in self.config.services:
            reason = spec.missing(self.config.available_commands)
            if reason is not None:
                result.unavailable[spec.name] = reason
                continue
            port = self.service_port(spec)
            record = self._alive(spec.name)
            if record is not None:
                result.kept.append(spec.name)
                waiting.append(record)
                continue
            c.require_free_port(spec.name, port)
            record = c.start_process(
                self.state,
                spec.name,
                spec.argv(port, self.config.cli),
                env={**env, **spec.env},
                port=port,
                url=spec.url(port),
                health_url=spec.health_url(port),
                die_with_parent=self.config.die_with_parent,
            )
            result.started.append(spec.name)
            waiting.append(record)
        deadline = time.monotonic() + self.config.ready_timeout_s
        pending = list(waiting)
        while pending:
            for record in list(pending):
                assert record.health_url is not None
                if c.http_healthy(record.health_url, timeout_s=1.0):
                    pending.remove(record)
                elif not is_alive(record):
                    raise c.ComponentError(record.name, "exited before it was healthy", record.log)
            if pending and time.monotonic() > deadline:
                first = pending[0]
                raise c.ComponentError(
                    first.name,
                    f"{first.health_url} not healthy after {self.config.ready_timeout_s:.0f} s",
                    first.log,
                )
            if pending:
                time.sleep(0.2)

    def run_cli(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> None:
        """Run one `onegrid` command to completion with the stack's environment."""
        log = self.state.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            completed = subprocess.run(
                [*self.config.cli, *args],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=self.config.ready_timeout_s * 5,
            )
        if completed.returncode != 0:
            raise c.ComponentError(
                name, f"`onegrid {' '.join(args)}` exited with {completed.returncode}", log
            )

    def down(self) -> list[int]:
        """Stop every process this stack started; returns the pids that were signalled."""
        records = {r.name: r for r in self.state.records()}
        order = [n for n in records if n not in _STOP_ORDER_LAST]
        order += [n for n in _STOP_ORDER_LAST if n in records]
        signalled: list[int] = []
        for name in order:
            signalled += stop(records[name], grace_s=self.config.stop_grace_s)
            self.state.forget(name)
        return signalled

    def status(self) -> list[ComponentStatus]:
        state = self.state.load_state()
        rows: list[ComponentStatus] = []
        records = {r.name: r for r in self.state.records()}
        for name in INFRA:
            record = records.pop(name, None)
            if record is not None:
                rows.append(
                    ComponentStatus(
                        name=name,
                        pid=record.pid if is_alive(record) else None,
                        url=mask_password(record.url) if record.url else None,
                        healthy=self._healthy(record),
                        source="started",
                    )
                )
            elif (
                name in ("postgres", "redis") and state.get(name, {}).get("source") == "configured"
            ):
                url = state[name]["dsn" if name == "postgres" else "url"]
                healthy = c.postgres_answers(url) if name == "postgres" else c.redis_answers(url)
                rows.append(ComponentStatus(name, None, mask_password(url), healthy, "configured"))
        for record in records.values():
            rows.append(
                ComponentStatus(
                    name=record.name,
                    pid=record.pid if is_alive(record) else None,
                    url=record.url,
                    healthy=self._healthy(record),
                    source="started",
                )
            )
        return rows

    def _healthy(self, record: ProcessRecord) -> bool:
        if not is_alive(record):
            return False
        if record.name == "postgres" and record.url:
            return c.postgres_answers(record.url, timeout_s=1.0)
        if record.name == "redis" and record.url:
            return c.redis_answers(record.url, timeout_s=1.0)
        if record.health_url:
            return c.http_healthy(record.health_url, timeout_s=1.0)
        return record.port is None or port_accepts(record.port)


def mask_password(url: str) -> str:
    """`url` with its password replaced by ***: status output ends up in terminals and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
