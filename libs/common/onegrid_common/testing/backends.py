"""Where the test session's broker, PostgreSQL and Redis come from.

Docker engine answering: testcontainers (Apache Kafka, PostgreSQL, Redis). Otherwise the
local stack's processes: tansu on a free port, the machine's PostgreSQL/Redis when they
answer, else embedded ones on free ports. Tests get the same fixtures either way.
`ONEGRID_TEST_BACKEND=local|docker` forces one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis

from onegrid_common.kafka_admin import ensure_topics
from onegrid_common.localstack import LocalStack, StackConfig, free_port
from onegrid_common.localstack import components as c
from onegrid_common.settings import DatabaseSettings, RedisSettings
from onegrid_contracts.catalogue import ADAPTER_UNITS, all_topics

Backend = Literal["docker", "local"]

# Redis logical databases 1..15 are handed out to test sessions; 0 is for `onegrid dev`.
_REDIS_TEST_DBS = range(1, 16)
_REDIS_CLAIM_TTL_S = 6 * 3600


def docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # no engine: DockerException, connection or permission errors
        return False


def choose_backend() -> Backend:
    forced = os.environ.get("ONEGRID_TEST_BACKEND", "").strip().lower()
    if forced in ("docker", "local"):
        return "docker" if forced == "docker" else "local"
    if forced:
        raise ValueError(f"ONEGRID_TEST_BACKEND must be docker or local, not {forced!r}")
    return "docker" if docker_available() else "local"


def new_state_dir(prefix: str) -> Path:
    # Not pytest's tmp_path: its parent is 0700 and the embedded PostgreSQL runs as `postgres`.
    return Path(tempfile.mkdtemp(prefix=prefix))


def local_stack(
    state_dir: Path, *, broker_storage: Literal["memory", "s3"] = "memory"
) -> LocalStack:
    """A stack of infrastructure only, on free ports, whose children die with this process."""
    configured_pg = DatabaseSettings().dsn
    return LocalStack(
        StackConfig(
            state_dir=state_dir,
            broker_port=free_port(),
            broker_storage=broker_storage,
            s3_port=free_port(),
            # The maintenance database: the session database is created separately.
            postgres_dsn=c.with_database(configured_pg, "postgres"),
            redis_url=RedisSettings().url,
            embedded_postgres_port=free_port(),
            embedded_redis_port=free_port(),
            services=(),
            die_with_parent=True,
        )
    )


class SessionBackends:
    """Starts each piece on first use and stops everything it started in `close`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._containers: list[Any] = []
        self._stack: LocalStack | None = None
        self._state_dir: Path | None = None
        self._bootstrap: str | None = None
        self._pg_server: str | None = None
        self._databases: list[str] = []
        self._redis_base: str | None = None
        self._redis: str | None = None
        # (control url, logical db, owner, url) of every database this session claimed
        self._redis_claims: list[tuple[str, int, str, str]] = []

    @property
    def idempotence(self) -> bool:
        """Apache Kafka supports idempotent producers; tansu does not."""
        return self.backend == "docker"

    @property
    def stack(self) -> LocalStack:
        if self._stack is None:
            self._state_dir = new_state_dir("onegrid-test-")
            self._stack = local_stack(self._state_dir)
        return self._stack

    def kafka_bootstrap(self) -> str:
        if self._bootstrap is None:
            if self.backend == "docker":
                from testcontainers.community.kafka import KafkaContainer

                container = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
                container.start()
                self._containers.append(container)
                bootstrap = str(container.get_bootstrap_server())
            else:
                bootstrap, _ = self.stack.ensure_broker()
            c.run_async(ensure_topics(bootstrap, all_topics(ADAPTER_UNITS)))
            self._bootstrap = bootstrap
        return self._bootstrap

    def postgres_server(self) -> str:
        """DSN of the server's maintenance database."""
        if self._pg_server is None:
            if self.backend == "docker":
                from testcontainers.community.postgres import PostgresContainer

                container = PostgresContainer(
                    "postgres:16-alpine",
                    username="postgres",
                    password="postgres",
                    dbname="postgres",
                )
                container.start()
                self._containers.append(container)
                self._pg_server = str(container.get_connection_url(driver=None))
            else:
                self._pg_server, _ = self.stack.ensure_postgres()
        return self._pg_server

    def fresh_database(self) -> str:
        """A new, empty database on the server; dropped in `close`."""
        dsn = c.with_database(self.postgres_server(), f"onegrid_test_{secrets.token_hex(4)}")
        c.ensure_database(dsn)
        self._databases.append(dsn)
        return dsn

    def redis_url(self) -> str:
        """A Redis logical database used by this session only, empty at the start."""
        if self._redis is None:
            self._redis = self.fresh_redis()
        return self._redis

    def fresh_redis(self) -> str:
        """Another empty Redis logical database for this session; flushed in `close`."""
        return self._claim_redis_db(self._redis_server())

    def _redis_server(self) -> str:
        if self._redis_base is None:
            if self.backend == "docker":
                from testcontainers.community.redis import RedisContainer

                container = RedisContainer("redis:7-alpine")
                container.start()
                self._containers.append(container)
                host = container.get_container_host_ip()
                port = container.get_exposed_port(6379)
                self._redis_base = f"redis://{host}:{port}/0"
            else:
                self._redis_base, _ = self.stack.ensure_redis()
        return self._redis_base

    def _claim_redis_db(self, base: str) -> str:
        # Other sessions may share the machine's Redis: claim a logical database with SET NX.
        owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        control_url = _with_redis_db(base, 0)
        control = redis.Redis.from_url(control_url)
        try:
            for db in _REDIS_TEST_DBS:
                key = f"onegrid:test-session:db{db}"
                if control.set(key, owner, nx=True, ex=_REDIS_CLAIM_TTL_S):
                    url = _with_redis_db(base, db)
                    self._redis_claims.append((control_url, db, owner, url))
                    client = redis.Redis.from_url(url)
                    try:
                        client.flushdb()
                    finally:
                        client.close()
                    return url
        finally:
            control.close()
        raise RuntimeError(
            f"all Redis test databases {_REDIS_TEST_DBS.start}..{_REDIS_TEST_DBS.stop - 1} at "
            f"{base} are claimed by other test sessions (keys onegrid:test-session:db*)"
        )

    def close(self) -> None:
        for dsn in self._databases:
            with contextlib.suppress(Exception):
                c.drop_database(dsn)
        for control_url, db, owner, url in self._redis_claims:
            with contextlib.suppress(Exception):
                client = redis.Redis.from_url(url)
                client.flushdb()
                client.close()
                control = redis.Redis.from_url(control_url)
                key = f"onegrid:test-session:db{db}"
                if control.get(key) == owner.encode():
                    control.delete(key)
                control.close()
        for container in reversed(self._containers):
            with contextlib.suppress(Exception):
                container.stop()
        if self._stack is not None:
            self._stack.down()
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"expected redis://host:port/db, got {url!r}")
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))
