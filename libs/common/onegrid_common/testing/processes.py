"""Processes a test controls: a broker it can restart, Python modules it can kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from onegrid_common.kafka_admin import ensure_topics
from onegrid_common.localstack import LocalStack
from onegrid_common.localstack import components as c
from onegrid_common.localstack.procs import is_alive, tail
from onegrid_common.localstack.procs import stop as stop_process
from onegrid_common.testing.backends import local_stack, new_state_dir
from onegrid_contracts.catalogue import TopicSpec, static_topics


class RestartableBroker:
    """A tansu broker with S3 storage (a loopback moto server) that a test may stop and start:
    topics, records and committed offsets survive. Clients see a real broker outage."""

    def __init__(self, topics: Sequence[TopicSpec] | None = None) -> None:
        self._state_dir = new_state_dir("onegrid-test-broker-")
        self._stack: LocalStack = local_stack(self._state_dir, broker_storage="s3")
        self.bootstrap, _ = self._stack.ensure_broker()
        c.run_async(ensure_topics(self.bootstrap, static_topics() if topics is None else topics))

    @property
    def pid(self) -> int | None:
        record = self._stack.state.load_record("broker")
        return record.pid if record is not None and is_alive(record) else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL with `kill`); its S3 storage keeps running."""
        record = self._stack.state.load_record("broker")
        if record is None:
            return
        stop_process(record, grace_s=0.0 if kill else 10.0)
        self._stack.state.forget("broker")

    def start(self) -> None:
        """Start the broker again on the same port and storage; return when it answers."""
        bootstrap, _ = self._stack.ensure_broker()
        if bootstrap != self.bootstrap:
            raise RuntimeError(f"broker came back at {bootstrap}, not {self.bootstrap}")

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    def log(self, lines: int = 50) -> str:
        return tail(self._stack.state.log_path("broker"), lines)

    def close(self) -> None:
        self._stack.down()
        shutil.rmtree(self._state_dir, ignore_errors=True)


class ModuleProcess:
    """`python -m <module>` started by a test, with its output in a log file."""

    def __init__(self, popen: subprocess.Popen[bytes], module: str, log: Path) -> None:
        self.popen = popen
        self.module = module
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown hook runs, as in a crash or an OOM kill."""
        if self.alive:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout_s: float = 10.0) -> int:
        """SIGTERM (a graceful stop); SIGKILL after `timeout_s`. Returns the exit code."""
        if self.alive:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.wait(timeout=10)

    def wait(self, timeout_s: float) -> int:
        return self.popen.wait(timeout=timeout_s)

    def output(self, lines: int = 50) -> str:
        return tail(self.log, lines)

    def wait_for_output(self, text: str, timeout_s: float = 30.0) -> None:
        """Wait until `text` appears in the output (e.g. a "ready" line); fail with the log."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if not self.alive:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"{self.module} did not print {text!r} "
            f"({'exited ' + str(self.popen.returncode) if not self.alive else 'timeout'}):\n"
            + self.output()
        )


def spawn_module(
    module: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str],
    log_dir: Path,
) -> ModuleProcess:
    """Start `python -m module args` in its own process group with `env` added to ours."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{module.replace('.', '_')}-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=c.set_parent_death_signal,
        )
    return ModuleProcess(popen, module, log)


def kill_all(processes: Sequence[ModuleProcess]) -> None:
    for process in processes:
        if process.alive:
            process.kill()
