"""`onegrid bench`: drive a city's load through the whole local stack and measure it.

Starts its own local stack (the `onegrid dev` processes and ports, so stop `onegrid dev`
first), seeds the demo city, measures the broker's and PostgreSQL's own limits, sends
reports at a set rate for a warm-up and a measured window, follows every case to its
evaluation, prints the figures and writes them to a JSON file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer


def bench(
    rate: Annotated[float, typer.Option(min=0.1, help="Reports per second offered.")] = 50.0,
    seconds: Annotated[float, typer.Option(min=1, help="The measured window (s).")] = 60.0,
    warmup: Annotated[float, typer.Option(min=0, help="Load before the window (s).")] = 10.0,
    drain: Annotated[
        float, typer.Option(min=0, help="How long the window's cases may take to finish (s).")
    ] = 120.0,
    sim_speed: Annotated[
        float, typer.Option(min=1, help="Department simulators this many times faster.")
    ] = 100.0,
    adapter_poll: Annotated[
        float, typer.Option(min=0.05, help="Adapters' status poll interval (s).")
    ] = 0.5,
    spread: Annotated[
        float, typer.Option(min=1, help="How far reports lie from a hotspot's anchor (m).")
    ] = 150.0,
    seed: Annotated[int, typer.Option(help="Seed of the report generator.")] = 7,
    out: Annotated[Path, typer.Option(help="Where to write the JSON result.")] = Path(
        "bench-results.json"
    ),
    limits: Annotated[
        bool, typer.Option(help="Measure the broker's and PostgreSQL's own rates first.")
    ] = True,
    keep_stack: Annotated[bool, typer.Option(help="Leave the bench stack running.")] = False,
    fresh: Annotated[
        bool, typer.Option(help="Start a clean stack (--no-fresh: reuse a kept one).")
    ] = True,
    postgres: Annotated[
        str, typer.Option(envvar="ONEGRID_BENCH_POSTGRES", help="PostgreSQL server DSN.")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    redis_url: Annotated[
        str, typer.Option(envvar="ONEGRID_BENCH_REDIS_URL", help="Redis database (emptied).")
    ] = "redis://127.0.0.1:6379/12",
    state_dir: Annotated[Path, typer.Option(help="The bench stack's state folder.")] = Path(
        ".onegrid/bench"
    ),
) -> None:
    """Benchmark the whole case lifecycle on the local stack (see docs/performance.md)."""
    from onegrid_cli.dev import available_commands
    from onegrid_common.bench.run import BenchConfig, run_bench
    from onegrid_common.localstack.components import ComponentError

    config = BenchConfig(
        rate=rate, seconds=seconds, warmup_s=warmup, drain_s=drain, seed=seed, spread_m=spread,
        sim_speed=sim_speed, adapter_poll_s=adapter_poll, state_dir=state_dir,
        postgres_server=postgres, redis_url=redis_url, out=out, limits=limits,
        keep_stack=keep_stack, fresh=fresh, available_commands=available_commands(),
    )  # fmt: skip
    try:
        result = run_bench(config, say=typer.echo)
    except ComponentError as exc:
        typer.echo(f"onegrid bench: the stack did not start: {exc}", err=True)
        typer.echo("is `onegrid dev` running? `onegrid dev down` first", err=True)
        raise typer.Exit(1) from exc
    typer.echo(summary(result))
    typer.echo(f"written   {out}")
    if not result.get("all_ended"):
        raise typer.Exit(2)


def summary(result: dict[str, object]) -> str:
    """The figures people read first, as text."""
    lines = [f"load average before/after: {result.get('load_average')}"]
    for s in result.get("stages", []):  # type: ignore[attr-defined]
        lines.append(
            f"{s['name']:<45} {s['reached']:>6}/{s['started']:<6} {s['per_s']:>7}/s"
            f"  p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  p99 {s['p99_ms']} ms"
        )
    if "limits" in result:
        lines.append(f"limits: {orjson.dumps(result['limits']).decode()}")
    if "ratios" in result:
        lines.append(f"ratios: {orjson.dumps(result['ratios']).decode()}")
    if "postgres_statements_per_case" in result:
        per_case = orjson.dumps(result["postgres_statements_per_case"]).decode()
        lines.append(f"postgres statements per case: {per_case}")
    lines.append(f"not complete: {result.get('not_complete')}")
    for name, p in result.get("processes", {}).items():  # type: ignore[attr-defined]
        lines.append(
            f"  {name:<22} cpu {p['cpu_s']:>7} s ({p['cores']} cores)"
            f"  rss peak {p['rss_peak_mb']} MB  growth {p['rss_growth_mb_per_min']} MB/min"
        )
    return "\n".join(lines)
