"""`onegrid dev up|status|down` for real, in a temporary state folder on spare ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from onegrid_common.localstack import (
    ComponentError,
    LocalStack,
    ServiceSpec,
    StackConfig,
    free_port,
)
from onegrid_common.localstack import components as c
from onegrid_common.localstack.procs import alive_pids, free_ports, is_alive
from onegrid_common.testing.backends import new_state_dir
from onegrid_contracts.catalogue import CASES_EVENTS, static_topics

pytestmark = pytest.mark.integration


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


# A stand-in service: serves /healthz on the port it is given, like `onegrid run` will.
FAKE_ONEGRID = textwrap.dedent(
    """
    import http.server, sys
    if sys.argv[1:3] == ["run", "broken"]:
        print("broken: cannot reach its database", flush=True)
        sys.exit(3)
    port = int(sys.argv[sys.argv.index("--port") + 1])

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok")

    http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
    """
)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    folder = new_state_dir("onegrid-test-dev-")
    try:
        yield folder
    finally:
        LocalStack(StackConfig(state_dir=folder)).down()
        shutil.rmtree(folder, ignore_errors=True)


def _onegrid(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ONEGRID_DEV_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "onegrid_cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _status(state_dir: Path) -> list[dict[str, Any]]:
    result = _onegrid("dev", "status", "--json", state_dir=state_dir)
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_dev_up_status_down_leaves_no_process_behind(state_dir: Path) -> None:
    broker, s3, postgres, redis = free_ports(4)
    config = StackConfig(
        state_dir=state_dir,
        broker_port=broker,
        broker_storage="s3",
        s3_port=s3,
        use_configured=False,
        embedded_postgres_port=postgres,
        embedded_redis_port=redis,
        services=(),
    )
    ports = [
        "--broker-port", str(config.broker_port),
        "--broker-storage", "s3",
        "--s3-port", str(config.s3_port),
        "--embedded",
        "--postgres-port", str(config.embedded_postgres_port),
        "--redis-port", str(config.embedded_redis_port),
        "--infra-only",  # the services' own tests start them; here: the stack mechanics
    ]  # fmt: skip
    first = _onegrid("dev", "up", *ports, state_dir=state_dir)
    assert first.returncode == 0, first.stdout + first.stderr

    rows = _status(state_dir)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == {"broker", "s3", "postgres", "redis"}
    for row in rows:
        assert {"name", "pid", "url", "healthy"} <= set(row)
        assert row["healthy"] is True, row
        assert isinstance(row["pid"], int)
    env_file = (state_dir / "env").read_text()
    assert f"ONEGRID_KAFKA_BOOTSTRAP_SERVERS={by_name['broker']['url'].split('//')[1]}" in env_file
    assert "ONEGRID_KAFKA_ENABLE_IDEMPOTENCE=false" in env_file

    # Again (through the API: the CLI takes seconds to import): what runs is kept.
    stack = LocalStack(config)
    again = stack.up(topics=[])
    assert again.started == []
    assert {r.name: r.pid for r in stack.status()} == {
        name: row["pid"] for name, row in by_name.items()
    }

    family = [
        p.pid
        for row in rows
        for p in [psutil.Process(row["pid"]), *psutil.Process(row["pid"]).children(True)]
    ]
    down = _onegrid("dev", "down", state_dir=state_dir)
    assert down.returncode == 0, down.stderr
    assert alive_pids(family) == []
    assert stack.status() == []


def test_table_services_start_restart_with_a_lost_broker_and_stop(
    state_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "fake_onegrid.py"
    script.write_text(FAKE_ONEGRID)
    config = StackConfig(
        state_dir=state_dir,
        broker_port=free_port(),
        services=(ServiceSpec("intake", "service", free_port(), ("run", "intake")),),
        available_commands=frozenset({"run"}),
        cli=(sys.executable, str(script)),
        ready_timeout_s=20,
        stop_grace_s=3,
        die_with_parent=True,
    )
    stack = LocalStack(config)
    result = stack.up(topics=static_topics())
    assert result.started == ["intake"]
    assert "ONEGRID_DB_DSN" in result.env
    intake = stack.state.load_record("intake")
    assert intake is not None
    assert {r.name: r.healthy for r in stack.status()}["intake"] is True

    # A lost memory broker forgets topics: everything that talks to it restarts with it.
    broker = stack.state.load_record("broker")
    assert broker is not None
    os.kill(broker.pid, signal.SIGKILL)
    # The kill is delivered asynchronously: on a busy machine the broker may still answer
    # for a moment, and `up` would find it running. The loss is what this test is about.
    c.wait_until(lambda: not is_alive(broker), timeout_s=10, name="broker", what="gone")
    again = stack.up(topics=static_topics())
    assert again.started == ["intake"]
    restarted = stack.state.load_record("intake")
    assert restarted is not None
    assert restarted.pid != intake.pid
    assert alive_pids([intake.pid]) == []
    assert CASES_EVENTS in c.run_async(_topics(f"127.0.0.1:{config.broker_port}"))

    pids = stack.down()
    assert alive_pids(pids) == []


def test_a_service_that_dies_is_named_with_the_end_of_its_log(
    state_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "fake_onegrid.py"
    script.write_text(FAKE_ONEGRID)
    stack = LocalStack(
        StackConfig(
            state_dir=state_dir,
            broker_port=free_port(),
            services=(ServiceSpec("broken", "service", free_port(), ("run", "broken")),),
            available_commands=frozenset({"run"}),
            cli=(sys.executable, str(script)),
            ready_timeout_s=20,
            die_with_parent=True,
        )
    )
    with pytest.raises(ComponentError, match="broken: exited before it was healthy") as failure:
        stack.up(topics=[])
    assert "cannot reach its database" in failure.value.log_tail
