"""Benchmark: accepted reports/s over HTTP and p50/p99 latency, one intake process.

    .venv/bin/python services/intake/benchmarks/bench_intake.py --seconds 20 --concurrency 32

Starts what it needs: a tansu broker (unless ONEGRID_KAFKA_BOOTSTRAP_SERVERS is set), a fresh
database on the machine's PostgreSQL (ONEGRID_DB_DSN's server, default 127.0.0.1:5432), the
machine's Redis (ONEGRID_REDIS_URL), publishes the demo city to the registry topics, then
serves intake with real uvicorn (`onegrid_common.service.run`) in a child process and posts
valid reports (random demo-city points, random categories, ~a tenth without a category)
from this process. Reports an accepted rate, latency percentiles and the outcome counts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import orjson
import psutil

from onegrid_common.auth import mint_token
from onegrid_common.bench.city import resident_id
from onegrid_common.kafka_admin import ensure_topics, wait_for_broker
from onegrid_common.localstack.components import (
    drop_database,
    ensure_database,
    tansu_argv,
    with_database,
)
from onegrid_common.localstack.procs import free_port, terminate
from onegrid_common.settings import KafkaSettings, SecuritySettings
from onegrid_common.testing.registry import demo_entities, publish_entities
from onegrid_contracts.catalogue import static_topics
from onegrid_intake.testing import body, grid_points
from onegrid_registry.seed.demo_city import build_demo_city


def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class _Client:
    """One keep-alive HTTP/1.1 connection with requests built by hand: at hundreds of
    requests a second an HTTP client library would take a core of this 2-core machine
    from the process being measured."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        status = int((await self._reader.readline()).split(b" ", 2)[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def _load(
    url: str, seconds: float, concurrency: int, points: list[tuple[str, float, float]],
    categories: list[tuple[str, bool]],
) -> tuple[list[float], dict[int, int], float, list[bytes]]:  # fmt: skip
    security = SecuritySettings()
    tokens = [
        mint_token(f"bench-{n}", ["grid_worker"], settings=security, ttl_s=3600)
        for n in range(concurrency)
    ]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    refusals: list[bytes] = []
    rng = random.Random(7)
    host, port = url.removeprefix("http://").split(":")
    stop_at = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        client = _Client(host, int(port))
        try:
            while time.perf_counter() < stop_at:
                _, lon, lat = rng.choice(points)
                # Jitter inside the grid: mostly new cases, some duplicates.
                lon += rng.uniform(-0.002, 0.002)
                lat += rng.uniform(-0.002, 0.002)
                category, needs_id = rng.choice(categories) if rng.random() > 0.1 else (None, False)
                report = body(lon, lat, category_code=category)
                if needs_id:  # civil-affairs applications name the applicant
                    report["reporter"]["id_number"] = resident_id(rng)
                headers = {
                    "Authorization": f"Bearer {tokens[n]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                started = time.perf_counter()
                status, answer = await client.post("/v1/reports", orjson.dumps(report), headers)
                elapsed = time.perf_counter() - started
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    latencies.append(elapsed)
                elif len(refusals) < 3:
                    refusals.append(answer)
        finally:
            client.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    wall = time.perf_counter() - began
    return latencies, statuses, wall, refusals


async def _prepare(
    kafka: KafkaSettings,
) -> tuple[list[tuple[str, float, float]], list[tuple[str, bool]]]:
    await wait_for_broker(kafka.bootstrap_servers, timeout_s=30)
    await ensure_topics(kafka.bootstrap_servers, static_topics())
    city = await asyncio.to_thread(build_demo_city, 1)
    await publish_entities(kafka, demo_entities(city))
    return grid_points(city), [(c.code, c.requires_id_number) for c in city.categories]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"intake exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("intake did not become ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args(argv)

    children: list[subprocess.Popen[bytes]] = []
    bootstrap = os.environ.get("ONEGRID_KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        port = free_port()
        children.append(
            subprocess.Popen(tansu_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        bootstrap = f"127.0.0.1:{port}"
    server = os.environ.get("ONEGRID_DB_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    dsn = with_database(server, f"onegrid_bench_{uuid.uuid4().hex[:8]}")
    ensure_database(dsn)
    kafka = KafkaSettings(bootstrap_servers=bootstrap, enable_idempotence=False)
    try:
        points, categories = asyncio.run(_prepare(kafka))
        http_port = free_port()
        env = {
            **os.environ,
            "ONEGRID_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ONEGRID_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "ONEGRID_DB_DSN": dsn,
            "ONEGRID_DB_POOL_MAX_SIZE": os.environ.get("ONEGRID_DB_POOL_MAX_SIZE", "20"),
            "ONEGRID_TELEMETRY_LOG_LEVEL": "WARNING",
            "ONEGRID_INTAKE_REPORTER_RATE_LIMIT": "0",
        }
        code = f"from onegrid_common.service import run; run('intake', port={http_port})"
        profile = os.environ.get("BENCH_PROFILE")  # cProfile output of the intake process
        if profile:
            script = f"{profile}.py"
            with open(script, "w") as f:
                f.write(code)
            argv = ["-m", "cProfile", "-o", profile, script]
        else:
            argv = ["-c", code]
        intake = subprocess.Popen([sys.executable, *argv], env=env)
        children.append(intake)
        url = f"http://127.0.0.1:{http_port}"
        _wait_ready(url, intake)
        asyncio.run(_load(url, args.warmup, args.concurrency, points, categories))
        cpu_before = psutil.Process(intake.pid).cpu_times()
        latencies, statuses, wall, refusals = asyncio.run(
            _load(url, args.seconds, args.concurrency, points, categories)
        )
        cpu_after = psutil.Process(intake.pid).cpu_times()
    finally:
        for child in reversed(children):
            terminate(child)
        drop_database(dsn)
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    result: dict[str, Any] = {
        "accepted": len(ms),
        "seconds": round(wall, 2),
        "accepted_per_s": round(len(ms) / wall, 1),
        "p50_ms": round(_percentile(ms, 0.50), 2) if ms else None,
        "p99_ms": round(_percentile(ms, 0.99), 2) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
        # CPU of the intake process per accepted report, and the share of a core it used.
        "intake_cpu_ms_per_report": round(1000 * cpu_s / len(ms), 2) if ms else None,
        "intake_cores": round(cpu_s / wall, 2),
        "concurrency": args.concurrency,
        "statuses": statuses,
    }
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    for answer in refusals:
        print("not accepted:", answer.decode(errors="replace")[:300])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
