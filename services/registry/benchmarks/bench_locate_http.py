"""HTTP locate throughput: `GET /v1/locate` against a real uvicorn server with the demo city.

Either against a running registry (`onegrid dev up --seed-demo`, default URL below):

    .venv/bin/python services/registry/benchmarks/bench_locate_http.py --url http://127.0.0.1:8101

or `--spawn`: seed the demo city into the configured database (ONEGRID_DB_DSN) and start
`onegrid run registry` on a free port itself (ONEGRID_KAFKA_* must point at a broker).

Prints requests/s and p50/p99 latency for `--concurrency` clients over `--seconds`, with
points drawn in and around the city (10% outside every grid: 404 answers count too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time

import httpx

from onegrid_common.auth import mint_token
from onegrid_common.settings import get_settings
from onegrid_registry.seed.demo_city import CITY_BOUNDS


def _points(count: int, rng: random.Random) -> list[tuple[float, float]]:
    west, south, east, north = CITY_BOUNDS
    margin_lon, margin_lat = (east - west) * 0.05, (north - south) * 0.05
    return [
        (
            rng.uniform(west - margin_lon, east + margin_lon),
            rng.uniform(south - margin_lat, north + margin_lat),
        )
        for _ in range(count)
    ]


async def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit(f"{url} not ready within {timeout_s:.0f} s")


async def _run(url: str, seconds: float, concurrency: int, near_m: float) -> None:
    token = mint_token("bench", ["service"], settings=get_settings().security)
    headers = {"Authorization": f"Bearer {token}"}
    points = _points(20_000, random.Random(1))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        # Warm up (and make sure the view has the demo city).
        probe = await client.get("/v1/locate", params={"lon": 111.30, "lat": 30.70})
        if probe.status_code != 200:
            raise SystemExit(f"locate answered {probe.status_code}: is the demo city seeded?")
        stop_at = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            index = offset
            while time.perf_counter() < stop_at:
                lon, lat = points[index % len(points)]
                index += concurrency
                started = time.perf_counter()
                response = await client.get(
                    "/v1/locate", params={"lon": lon, "lat": lat, "near_m": near_m}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(
        f"HTTP locate (near_m={near_m:g}, {concurrency} clients, {elapsed:.1f} s): "
        f"{len(latencies) / elapsed:,.0f} requests/s  p50 {statistics.median(ordered):.2f} ms  "
        f"p99 {p99:.2f} ms  statuses {dict(sorted(statuses.items()))}"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8101")
    parser.add_argument("--spawn", action="store_true", help="seed and start the registry")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    server: subprocess.Popen[bytes] | None = None
    url = args.url
    if args.spawn:
        from onegrid_registry.db.seed import seed_demo_city

        asyncio.run(seed_demo_city(get_settings().db))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "ONEGRID_TELEMETRY_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(
            [sys.executable, "-m", "onegrid_cli.main", "run", "registry", "--port", str(port)],
            env=env,
        )
    try:
        asyncio.run(_wait_ready(url, 120))
        for near_m in (0.0, 50.0):
            asyncio.run(_run(url, args.seconds, args.concurrency, near_m))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
