"""Processes of the local stack: start detached, recognise after restart, stop for sure.

A process is identified by its pid AND its start time: a pid alone may have been
recycled by the system since we wrote it down, and we must never signal a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

# Start times are compared with this tolerance (psutil reports them as floats).
_START_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class ProcessRecord:
    """What we know about one process we started."""

    name: str
    pid: int
    create_time: float
    argv: tuple[str, ...]
    log: str
    port: int | None = None
    url: str | None = None
    health_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["argv"] = list(self.argv)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            argv=tuple(str(a) for a in data["argv"]),
            log=str(data["log"]),
            port=None if data.get("port") is None else int(data["port"]),
            url=data.get("url"),
            health_url=data.get("health_url"),
            extra={str(k): str(v) for k, v in (data.get("extra") or {}).items()},
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now (the OS picks it; another process could take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports free now: every socket is held until all are picked, so
    the OS cannot hand out one port twice (as `free_port()` called in a row can)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_accepts(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    port: int | None = None,
    url: str | None = None,
    health_url: str | None = None,
    extra: Mapping[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> ProcessRecord:
    """Start `argv` detached in its own session, output appended to `log`.

    Its own session (and process group) lets `stop` signal the process and every
    child it forked, and keeps it running after the command that started it exits.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} start {name}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=preexec,
            )
        except OSError as exc:
            raise RuntimeError(f"{name}: cannot start {argv[0]}: {exc}") from exc
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = 0.0  # exited at once; `is_alive` reports it dead
    # The Popen object is dropped on purpose: the process outlives this one. A reaper
    # thread would keep it from turning into a zombie while we still run.
    _reap_in_background(proc)
    return ProcessRecord(
        name=name,
        pid=proc.pid,
        create_time=create_time,
        argv=tuple(argv),
        log=str(log),
        port=port,
        url=url,
        health_url=health_url,
        extra=dict(extra or {}),
    )


def terminate(proc: subprocess.Popen[bytes], *, grace_s: float = 30.0) -> None:
    """Stop a child this process started: SIGTERM, then SIGKILL after `grace_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _reap_in_background(proc: subprocess.Popen[bytes]) -> None:
    import threading

    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def process_of(record: ProcessRecord) -> psutil.Process | None:
    """The live process of `record`, or None if it exited (or its pid now belongs to another)."""
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > _START_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(record: ProcessRecord) -> bool:
    return process_of(record) is not None


def stop(record: ProcessRecord, *, grace_s: float = 10.0) -> list[int]:
    """SIGTERM the process group of `record`, SIGKILL what is left after `grace_s`.

    Returns the pids that were signalled (the process and its descendants), so a
    caller can check none of them lives on.
    """
    proc = process_of(record)
    if proc is None:
        return []
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    pids = [p.pid for p in family]
    _signal_group(record.pid, family, signal.SIGTERM)
    alive = _wait_gone(family, grace_s)
    if alive:
        _signal_group(record.pid, alive, signal.SIGKILL)
        _wait_gone(alive, 5.0)
    return pids


def _wait_gone(family: Sequence[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until every process has exited; the ones still running after `timeout_s`.

    A zombie counts as gone: it runs no code, and its parent (often init, for detached
    processes) reaps it when it gets round to it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in family if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _signal_group(leader: int, family: Sequence[psutil.Process], sig: signal.Signals) -> None:
    # The leader was started in its own session, so its pid is the group id; members
    # that left the group (a double fork) get the signal one by one.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            if os.getpgid(member.pid) != leader:
                member.send_signal(sig)


def tail(path: Path | str, lines: int = 20) -> str:
    """The last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def alive_pids(pids: Sequence[int]) -> list[int]:
    """The pids of `pids` that still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive
