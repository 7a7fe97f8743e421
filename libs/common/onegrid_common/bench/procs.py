"""CPU seconds and memory of every process of the stack while the bench runs (psutil)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class ProcSeries:
    name: str
    pid: int
    cpu_start: float | None = None
    cpu_end: float | None = None
    rss: list[tuple[float, int]] = field(default_factory=list)  # (epoch s, bytes)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def machine_processes() -> dict[str, list[int]]:
    """The machine's PostgreSQL and Redis (shared with anything else running on it)."""
    found: dict[str, list[int]] = {"postgres (machine)": [], "redis (machine)": []}
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        if name.startswith("postgres"):
            found["postgres (machine)"].append(proc.pid)
        elif name.startswith(("redis-server", "valkey-server")):
            found["redis (machine)"].append(proc.pid)
    return found


class ProcessSampler:
    """Samples RSS every `interval_s`; CPU seconds between `mark_start()` and `mark_end()`.

    `groups` maps a name to pids; a group's figures are the sum over its pids (PostgreSQL
    runs a process per connection)."""

    def __init__(self, groups: dict[str, list[int]], interval_s: float = 1.0) -> None:
        self._groups = groups
        self._interval = interval_s
        self._procs: dict[str, list[psutil.Process]] = {}
        for name, pids in groups.items():
            self._procs[name] = []
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    self._procs[name].append(psutil.Process(pid))
        self.rss: dict[str, list[tuple[float, int]]] = {name: [] for name in groups}
        self._cpu_start: dict[str, float] = {}
        self._cpu_end: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.window: tuple[float, float] | None = None

    def _cpu_now(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, procs in self._procs.items():
            total = 0.0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    total += _cpu(proc)
            out[name] = total
        return out

    def _sample(self) -> None:
        now = time.time()
        for name, procs in self._procs.items():
            total = 0
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.rss[name].append((now, total))

    async def _loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def mark_start(self) -> None:
        self._cpu_start = self._cpu_now()
        self._window_start = time.time()

    def mark_end(self) -> None:
        self._cpu_end = self._cpu_now()
        self.window = (self._window_start, time.time())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Per group: CPU seconds and cores used in the window; RSS at its start, at its end,
        the peak, and the growth rate (MB/min, least squares over the window)."""
        out: dict[str, dict[str, float | None]] = {}
        start, end = self.window or (0.0, 0.0)
        seconds = max(end - start, 1e-9)
        for name in self._groups:
            cpu = self._cpu_end.get(name, 0.0) - self._cpu_start.get(name, 0.0)
            inside = [(t, r) for t, r in self.rss[name] if start <= t <= end]
            peak = max((r for _, r in self.rss[name]), default=0)
            out[name] = {
                "cpu_s": round(cpu, 2),
                "cores": round(cpu / seconds, 2),
                "rss_start_mb": round(inside[0][1] / 2**20, 1) if inside else None,
                "rss_end_mb": round(inside[-1][1] / 2**20, 1) if inside else None,
                "rss_peak_mb": round(peak / 2**20, 1),
                "rss_growth_mb_per_min": _slope_mb_per_min(inside),
            }
        return out


def _slope_mb_per_min(points: list[tuple[float, int]]) -> float | None:
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / var  # bytes per second
    return round(slope * 60 / 2**20, 2)
