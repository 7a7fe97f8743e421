"""pytest plugin of onegrid: real broker, PostgreSQL and Redis for integration tests.

Loaded by the root conftest.py (`pytest_plugins = ["onegrid_common.testing.plugin"]`).
Every backend starts on first use and once per session, so unit tests pay nothing:

- `kafka_bootstrap`: "host:port" of a broker with the catalogue's static topics created;
- `pg_dsn`: a fresh database `onegrid_test_<random>`, dropped at the end of the session;
- `redis_url`: a Redis logical database that only this session uses, empty at the start;
- `settings`: `Settings` pointing at those three; `test_env`: the same as ONEGRID_* variables;
- `private_settings`: makes `Settings` on the same broker with a database and a Redis
  logical database of their own, for tests whose whole-schema state (a fake clock's
  periods, a flushed Redis) must not meet another module's;
- `broker_process`: a separate broker (S3 storage) that a test may stop and restart;
- `run_module`: start `python -m <module>` with `test_env`; killed after the test;
- `demo_registry`: the demo city published to the registry topics once (testing/registry.py).

Mark tests that use them `@pytest.mark.integration`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from onegrid_common.settings import DatabaseSettings, KafkaSettings, RedisSettings, Settings
from onegrid_common.testing.backends import SessionBackends, choose_backend
from onegrid_common.testing.processes import (
    ModuleProcess,
    RestartableBroker,
    kill_all,
    spawn_module,
)
from onegrid_common.testing.registry import demo_registry

__all__ = ["demo_registry"]  # fixtures defined elsewhere, registered through this plugin

RunModule = Callable[..., ModuleProcess]


@pytest.fixture(scope="session")
def onegrid_backends() -> Iterator[SessionBackends]:
    backends = SessionBackends(choose_backend())
    try:
        yield backends
    finally:
        backends.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(onegrid_backends: SessionBackends) -> str:
    return onegrid_backends.kafka_bootstrap()


@pytest.fixture(scope="session")
def pg_dsn(onegrid_backends: SessionBackends) -> str:
    return onegrid_backends.fresh_database()


@pytest.fixture(scope="session")
def redis_url(onegrid_backends: SessionBackends) -> str:
    return onegrid_backends.redis_url()


@pytest.fixture(scope="session")
def settings(
    onegrid_backends: SessionBackends, kafka_bootstrap: str, pg_dsn: str, redis_url: str
) -> Settings:
    return Settings(
        environment="test",
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap, enable_idempotence=onegrid_backends.idempotence
        ),
        db=DatabaseSettings(dsn=pg_dsn),
        redis=RedisSettings(url=redis_url),
    )


PrivateSettings = Callable[[], Settings]


@pytest.fixture(scope="session")
def private_settings(onegrid_backends: SessionBackends, settings: Settings) -> PrivateSettings:
    def make() -> Settings:
        return settings.model_copy(
            update={
                "db": DatabaseSettings(dsn=onegrid_backends.fresh_database()),
                "redis": RedisSettings(url=onegrid_backends.fresh_redis()),
            }
        )

    return make


@pytest.fixture(scope="session")
def test_env(settings: Settings) -> dict[str, str]:
    """The ONEGRID_* environment of `settings`, for subprocesses."""
    return {
        "ONEGRID_ENVIRONMENT": settings.environment,
        "ONEGRID_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "ONEGRID_KAFKA_ENABLE_IDEMPOTENCE": str(settings.kafka.enable_idempotence).lower(),
        "ONEGRID_DB_DSN": settings.db.dsn,
        "ONEGRID_REDIS_URL": settings.redis.url,
    }


@pytest.fixture(scope="session")
def broker_process() -> Iterator[RestartableBroker]:
    """A broker of its own (tansu with S3 storage) for tests that stop and restart it."""
    broker = RestartableBroker()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def run_module(test_env: dict[str, str], tmp_path: Path) -> Iterator[RunModule]:
    """`run_module("pkg.module", "--flag", env={...})` starts `python -m pkg.module` with
    `test_env` (plus `env`); `.kill()` is kill -9. Whatever still runs is killed after the test.
    """
    started: list[ModuleProcess] = []

    def run(module: str, *args: str, env: dict[str, str] | None = None) -> ModuleProcess:
        process = spawn_module(
            module, args, env={**test_env, **(env or {})}, log_dir=tmp_path / "processes"
        )
        started.append(process)
        return process

    try:
        yield run
    finally:
        kill_all(started)
