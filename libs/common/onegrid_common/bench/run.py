"""One bench run: stack, reference limits, load, drain, figures."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import psutil
from prometheus_client.parser import text_string_to_metric_families

from onegrid_common.auth import mint_token
from onegrid_common.bench import limits
from onegrid_common.bench.city import ReportMaker, load_city
from onegrid_common.bench.driver import Bench
from onegrid_common.bench.procs import ProcessSampler, machine_processes
from onegrid_common.bench.stack import BenchStackOptions, bench_stack_config
from onegrid_common.bench.stats import stage
from onegrid_common.localstack import components as c
from onegrid_common.localstack.stack import LocalStack
from onegrid_common.localstack.state import StateDir
from onegrid_common.settings import SecuritySettings
from onegrid_contracts.catalogue import all_topics


@dataclass(frozen=True)
class BenchConfig:
    rate: float = 50.0  # reports per second
    seconds: float = 60.0  # the measured window
    warmup_s: float = 10.0
    drain_s: float = 120.0  # after sending: how long cases may take to finish
    seed: int = 7
    spread_m: float = 150.0
    sim_speed: float = 100.0
    adapter_poll_s: float = 0.5
    state_dir: Path = Path(".onegrid/bench")
    postgres_server: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database: str = "onegrid_bench"
    redis_url: str = "redis://127.0.0.1:6379/12"
    broker_port: int = 9092
    out: Path | None = Path("bench-results.json")
    limits: bool = True
    keep_stack: bool = False
    fresh: bool = True  # False: use the bench stack a previous run kept (--keep-stack)
    reporters: int = 200  # distinct reporter and grid worker identities
    available_commands: frozenset[str] = field(default_factory=frozenset)


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def _commits(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value or 0)
    finally:
        await conn.close()


async def _statements(urls: dict[str, str]) -> dict[str, float]:
    """Statements each service has sent to PostgreSQL so far (its /metrics counter)."""
    counts: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name, url in urls.items():
            try:
                response = await client.get(f"{url}/metrics")
            except httpx.HTTPError:
                continue
            if response.status_code != 200:
                continue  # simulators and gateways serve no metrics
            for family in text_string_to_metric_families(response.text):
                if family.name == "onegrid_db_statements":
                    counts[name] = sum(x.value for x in family.samples if x.name.endswith("_total"))
    return counts


async def _probe(url: str, token: str, maker: ReportMaker, timeout_s: float = 90.0) -> None:
    """Wait until intake accepts a report: its registry read model has caught up."""
    deadline = time.monotonic() + timeout_s
    last = ""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            report = maker.next()
            body = {**report.body, "channel": "hotline_12345"}
            try:
                resp = await client.post(
                    "/v1/reports",
                    json=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Idempotency-Key": os.urandom(8).hex(),
                    },
                )
                if resp.status_code == 202:
                    return
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            await asyncio.sleep(1.0)
    raise RuntimeError(f"intake at {url} does not accept reports: {last}")


async def _measure(
    config: BenchConfig, urls: dict[str, str], bootstrap: str, dsn: str,
    pids: dict[str, list[int]], say: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    security = SecuritySettings()
    admin = mint_token("bench-admin", ["admin"], settings=security, ttl_s=24 * 3600)
    operator = mint_token("bench-operator", ["operator"], settings=security, ttl_s=24 * 3600)
    tokens = {
        "grid_worker": [
            mint_token(f"bench-gw-{n}", ["grid_worker"], settings=security, ttl_s=24 * 3600)
            for n in range(config.reporters)
        ],
        "reporter": [
            mint_token(f"bench-rp-{n}", ["reporter"], settings=security, ttl_s=24 * 3600)
            for n in range(config.reporters)
        ],
        "service": [
            mint_token("bench-12345-gateway", ["service"], settings=security, ttl_s=24 * 3600)
        ],
    }
    result: dict[str, Any] = {}
    if config.limits:
        say("limits    broker produce+consume, PostgreSQL insert-commit")
        result["limits"] = {
            "broker": await limits.broker_rate(bootstrap),
            "postgres": await limits.postgres_rate(dsn),
        }
    city = await load_city(urls["registry"], admin)
    maker = ReportMaker(city, seed=config.seed, spread_m=config.spread_m)
    await _probe(urls["intake"], tokens["service"][0], maker)
    say(f"city      {len(city.grids)} grids, {len(city.categories)} categories")
    bench = Bench(
        city=city,
        maker=maker,
        intake_url=urls["intake"],
        dispatch_url=urls["dispatch"],
        bootstrap=bootstrap,
        tokens=tokens,
        actor_token=operator,
    )
    sampler = ProcessSampler(pids)
    try:
        await bench.follow()
        say(f"warm      {await bench.warm():.0f} s until a first case was evaluated")
        sampler.start()
        load_before = os.getloadavg()
        say(f"load      {config.rate:g}/s, {config.warmup_s:g} s warm-up + {config.seconds:g} s")
        sending = asyncio.create_task(bench.send(config.rate, config.warmup_s + config.seconds))
        await asyncio.sleep(config.warmup_s)
        sampler.mark_start()
        commits_before = await _commits(dsn)
        statements_before = await _statements(urls)
        window_start = time.time()
        _, window_end = await sending
        sampler.mark_end()
        commits_after = await _commits(dsn)
        statements_after = await _statements(urls)
        load_after = os.getloadavg()
        say(f"drain     up to {config.drain_s:g} s for the window's cases to be evaluated")
        await bench.drain(window_start, window_end, config.drain_s)
        drained_at = time.time()
    finally:
        await sampler.stop()
        await bench.close()
    window = window_end - window_start
    measured = [t for t in bench.cases.values() if window_start <= t.sent_at <= window_end]
    n = len(measured)

    def durations(attr: str) -> list[float]:
        out = []
        for t in measured:
            at = getattr(t, attr)
            if at is not None:
                out.append(max(0.0, at - t.sent_at))
        return out

    def inside(attr: str) -> int:
        return sum(
            1
            for t in bench.cases.values()
            if (at := getattr(t, attr)) is not None and window_start <= at <= window_end
        )

    names = (
        ("report → accepted (HTTP 202)", "accepted_at"),
        ("report → dispatched", "dispatched_at"),
        ("report → first task delivered (workbench or department)", "delivered_at"),
        ("report → task in a department's own system (adapter)", "in_department_at"),
        ("report → evaluated", "evaluated_at"),
    )
    stages = [stage(name, n, durations(attr), window, inside(attr)) for name, attr in names]
    stuck: dict[str, int] = {}
    for t in measured:
        if t.evaluated_at is None:
            reason = t.stuck or "not evaluated before the drain ended"
            stuck[reason] = stuck.get(reason, 0) + 1
    via: dict[str, int] = {}
    for t in measured:
        if t.delivered_via:
            via[t.delivered_via] = via.get(t.delivered_via, 0) + 1
    full = stages[-1]
    tally = bench.tally
    result.update(
        {
            "config": {
                "rate": config.rate, "seconds": config.seconds, "warmup_s": config.warmup_s,
                "drain_s": config.drain_s, "seed": config.seed, "spread_m": config.spread_m,
                "sim_speed": config.sim_speed, "adapter_poll_s": config.adapter_poll_s,
            },
            "machine": _machine(),
            "load_average": {"before": [round(x, 2) for x in load_before],
                             "after": [round(x, 2) for x in load_after]},
            "window_s": round(window, 2),
            "reports": {
                "sent": tally.sent, "statuses": {str(k): v for k, v in tally.statuses.items()},
                "errors": dict(tally.errors.most_common(10)),
                "merged_into_open_cases": tally.merged,
                "late_slots": tally.late, "offered_per_s": config.rate,
            },
            "cases_in_window": n,
            "complete": n > 0 and full.reached == n,
            # evaluated, or waiting for an operator by design (dispute, unreachable unit)
            "all_ended": n > 0
            and full.reached + sum(v for k, v in stuck.items() if k.startswith("operator")) == n,
            "not_complete": stuck,
            "delivered_via": via,
            "reply_topics_not_followed": bench.unfollowed,
            "stages": [s.to_json() for s in stages],
            "drain_s_used": round(drained_at - window_end, 1),
            "actions": dict(tally.actions), "action_failures": dict(tally.action_failures),
            "events_seen": dict(tally.events.most_common()),
            "postgres_commits_in_window": commits_after - commits_before,
            "processes": sampler.summary(),
        }
    )  # fmt: skip
    if n and window:
        result["postgres_commits_per_case"] = round((commits_after - commits_before) / n, 1)
        # Round trips, not only commits: what each service sends per case in the window.
        sent = {
            name: (count - statements_before.get(name, 0.0)) / n
            for name, count in sorted(statements_after.items())
        }
        result["postgres_statements_per_case"] = {
            "all": round(sum(sent.values()), 1),
            **{name: round(v, 1) for name, v in sent.items() if v > 0},
        }
    case_events = sum(v for k, v in tally.events.items() if k.startswith("onegrid.case."))
    if tally.sent:
        result["case_events_per_report"] = round(case_events / tally.sent, 1)
    if "limits" in result and full.per_s:
        lim = result["limits"]
        result["ratios"] = {
            "broker_msgs_per_s_per_lifecycle_case_per_s": round(
                lim["broker"]["produce_consume_per_s"] / full.per_s, 1
            ),
            "postgres_commits_per_s_per_lifecycle_case_per_s": round(
                lim["postgres"]["commits_per_s"] / full.per_s, 1
            ),
        }
    return result


def run_bench(
    config: BenchConfig, say: Callable[[str], None] = lambda _line: None
) -> dict[str, Any]:
    """Start the bench's stack, measure, stop the stack (unless keep_stack); the result
    document is returned and written to `config.out`."""
    if config.rate <= 0 or config.seconds <= 0 or config.warmup_s < 0:
        raise ValueError("rate and seconds must be positive, warm-up not negative")
    dsn = c.with_database(config.postgres_server, config.database)
    stack = LocalStack(
        bench_stack_config(
            BenchStackOptions(
                state_dir=config.state_dir.resolve(),
                postgres_dsn=dsn,
                redis_url=config.redis_url,
                broker_port=config.broker_port,
                sim_speed=config.sim_speed,
                adapter_poll_s=config.adapter_poll_s,
                available_commands=config.available_commands,
            )
        )
    )
    if config.fresh:  # a previous bench's leftovers go: empty database, Redis and broker
        stack.down()
        if c.postgres_answers(c.with_database(dsn, "postgres")):
            c.drop_database(dsn)
        _flush_redis(config.redis_url)
    try:
        up = stack.up(seed_demo=config.fresh, topics=all_topics(), say=say)
        state = StateDir(config.state_dir.resolve())
        records = {r.name: r for r in state.records()}
        urls = {name: r.url for name, r in records.items() if r.url}
        for needed in ("registry", "intake", "dispatch"):
            if needed not in urls:
                raise RuntimeError(f"the stack has no {needed}: {up.unavailable}")
        pids = {name: [r.pid] for name, r in records.items() if name not in ("postgres", "redis")}
        pids.update(machine_processes())
        # The driver shares the machine with the stack: its CPU is part of the picture.
        pids["bench driver (this process)"] = [os.getpid()]
        result = asyncio.run(
            _measure(
                config,
                urls,
                up.env["ONEGRID_KAFKA_BOOTSTRAP_SERVERS"],
                up.env["ONEGRID_DB_DSN"],
                pids,
                say,
            )
        )
    finally:
        if not config.keep_stack:
            stack.down()
    if config.out is not None:
        config.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
