"""Pure parts of the local stack: the process table, the state folder, ports, URLs."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import psutil
import pytest

from onegrid_common.localstack import SERVICES, ProcessRecord, ServiceSpec, StateDir, free_port
from onegrid_common.localstack import components as c
from onegrid_common.localstack.procs import free_ports, is_alive, tail
from onegrid_common.localstack.services import check_table
from onegrid_common.localstack.stack import mask_password
from onegrid_common.localstack.state import parse_env
from onegrid_common.testing.backends import _with_redis_db


def test_every_designed_service_has_a_row_with_a_unique_port() -> None:
    names = {spec.name for spec in SERVICES}
    assert names >= {
        "registry",
        "intake",
        "dispatch",
        "scoring",
        "notification",
        "adapter-urban",
        "adapter-police",
        "adapter-civil",
    }
    check_table(SERVICES)


def test_a_row_runs_its_onegrid_command_on_its_port() -> None:
    spec = ServiceSpec(name="intake", kind="service", dev_port=8102, command=("run", "intake"))
    assert spec.argv(9000, cli=["onegrid"]) == ["onegrid", "run", "intake", "--port", "9000"]
    assert spec.argv(9000)[:3] == [sys.executable, "-m", "onegrid_cli.main"]
    assert spec.health_url(9000) == "http://127.0.0.1:9000/healthz"
    assert spec.cli_command == "run"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            (
                ServiceSpec("a", "service", 1, ("run", "a")),
                ServiceSpec("a", "service", 2, ("run", "a")),
            ),
            "duplicate names ['a']",
        ),
        (
            (
                ServiceSpec("a", "service", 1, ("run", "a")),
                ServiceSpec("b", "simulator", 1, ("run", "b")),
            ),
            "ports [1]",
        ),
        ((ServiceSpec("broker", "service", 1, ("run", "x")),), "reserved"),
    ],
)
def test_a_table_with_clashing_rows_is_rejected(
    rows: tuple[ServiceSpec, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_table(rows)


def test_state_dir_keeps_records_env_and_state(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "st")
    state.create()
    record = ProcessRecord(
        name="broker",
        pid=123,
        create_time=1.5,
        argv=("tansu", "broker"),
        log=str(state.log_path("broker")),
        port=9092,
        url="kafka://127.0.0.1:9092",
        extra={"storage": "memory://tansu/"},
    )
    state.save_record(record)
    assert state.load_record("broker") == record
    assert state.records() == [record]
    state.forget("broker")
    assert state.load_record("broker") is None

    state.save_env({"ONEGRID_DB_DSN": "postgresql://x@h:1/d?a=b", "B": "2"})
    assert state.load_env() == {"ONEGRID_DB_DSN": "postgresql://x@h:1/d?a=b", "B": "2"}
    state.save_state({"broker": {"bootstrap": "127.0.0.1:9092"}})
    assert state.load_state()["broker"]["bootstrap"] == "127.0.0.1:9092"


def test_a_corrupt_pid_file_is_reported_with_its_path(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.create()
    (state.pids / "redis.json").write_text("{not json")
    with pytest.raises(RuntimeError, match=r"corrupt pid file .*redis\.json"):
        state.load_record("redis")


def test_env_file_lines_must_be_key_value() -> None:
    assert parse_env("# comment\n\nA=1\nB=x=y\n") == {"A": "1", "B": "x=y"}
    with pytest.raises(ValueError, match="line 2: expected KEY=VALUE"):
        parse_env("A=1\nnonsense\n")


def test_free_ports_can_be_bound() -> None:
    ports = {free_port() for _ in range(5)}
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_recycled_pid_is_not_taken_for_our_process() -> None:
    me = psutil.Process(os.getpid())
    ours = ProcessRecord("x", me.pid, me.create_time(), ("python",), "/dev/null")
    recycled = ProcessRecord("x", me.pid, me.create_time() - 100, ("python",), "/dev/null")
    assert is_alive(ours)
    assert not is_alive(recycled)


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert tail(log, 2) == "line 98\nline 99"
    assert tail(tmp_path / "missing.log") == ""


def test_urls_are_rewritten_and_passwords_masked() -> None:
    dsn = "postgresql://u:secret@h:5432/onegrid?sslmode=disable"
    assert (
        c.with_database(dsn, "postgres") == "postgresql://u:secret@h:5432/postgres?sslmode=disable"
    )
    assert c.database_of(dsn) == "onegrid"
    assert mask_password(dsn) == "postgresql://u:***@h:5432/onegrid?sslmode=disable"
    assert mask_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert _with_redis_db("redis://127.0.0.1:6379", 3) == "redis://127.0.0.1:6379/3"
    with pytest.raises(ValueError, match="names no database"):
        c.database_of("postgresql://u@h:5432")


def test_ports_picked_together_are_distinct_and_free() -> None:
    ports = free_ports(50)
    assert len(set(ports)) == 50
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # free once free_ports returned
