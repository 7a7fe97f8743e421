"""`onegrid dev up|down|status|logs`: the local stack on one machine, no Docker."""

from __future__ import annotations

import contextlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from onegrid_common.localstack import (
    SERVICES,
    ComponentError,
    LocalStack,
    StackConfig,
    repo_root,
)
from onegrid_common.localstack.procs import tail
from onegrid_common.localstack.state import StateDir
from onegrid_common.settings import Settings
from onegrid_contracts.catalogue import ADAPTER_UNITS, all_topics

app = typer.Typer(
    help="Run the whole system locally (broker, PostgreSQL, Redis, services).",
    no_args_is_help=True,
)

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="ONEGRID_DEV_STATE_DIR",
        help="Pid files, logs and state (default: .onegrid/ at the repository root).",
    ),
]


def _state_dir(option: Path | None) -> Path:
    return option.resolve() if option is not None else repo_root() / ".onegrid"


def available_commands() -> frozenset[str]:
    """The top-level `onegrid` commands that exist now (rows of the stack depend on them)."""
    from onegrid_cli import main

    group = typer.main.get_command(main.app)
    commands = getattr(group, "commands", {})
    return frozenset(commands)


@app.command()
def up(
    seed_demo: Annotated[bool, typer.Option(help="Seed the demo city.")] = False,
    broker_port: Annotated[int, typer.Option(envvar="ONEGRID_DEV_BROKER_PORT")] = 9092,
    broker_storage: Annotated[
        str, typer.Option(help="memory, or s3 (a local moto S3 server: survives restarts).")
    ] = "memory",
    s3_port: Annotated[int, typer.Option(envvar="ONEGRID_DEV_S3_PORT")] = 9094,
    postgres_port: Annotated[
        int, typer.Option(help="Port of the embedded PostgreSQL if the configured one is down.")
    ] = 55432,
    redis_port: Annotated[
        int, typer.Option(help="Port of the embedded Redis if the configured one is down.")
    ] = 56379,
    embedded: Annotated[
        bool, typer.Option(help="Start embedded PostgreSQL and Redis even if configured ones run.")
    ] = False,
    infra_only: Annotated[
        bool, typer.Option(help="Only the broker, PostgreSQL and Redis: no services.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each component.")] = 60.0,
    state_dir: StateDirOption = None,
) -> None:
    """Start (or complete) the local stack and return when everything is ready."""
    if broker_storage not in ("memory", "s3"):
        raise typer.BadParameter("must be memory or s3", param_hint="--broker-storage")
    storage: Literal["memory", "s3"] = "s3" if broker_storage == "s3" else "memory"
    settings = Settings()
    commands = available_commands()
    stack = LocalStack(
        StackConfig(
            state_dir=_state_dir(state_dir),
            broker_port=broker_port,
            broker_storage=storage,
            s3_port=s3_port,
            postgres_dsn=settings.db.dsn,
            redis_url=settings.redis.url,
            use_configured=not embedded,
            embedded_postgres_port=postgres_port,
            embedded_redis_port=redis_port,
            services=() if infra_only else SERVICES,
            available_commands=commands,
            ready_timeout_s=timeout,
        )
    )
    try:
        result = stack.up(seed_demo=seed_demo, topics=all_topics(ADAPTER_UNITS), say=typer.echo)
    except ComponentError as exc:
        typer.echo(f"onegrid dev up failed: {exc}", err=True)
        typer.echo("what did start keeps running: `onegrid dev down` stops it", err=True)
        raise typer.Exit(1) from exc
    for name in result.started:
        typer.echo(f"started   {name}")
    for name in result.kept:
        typer.echo(f"running   {name}")
    for name, reason in result.unavailable.items():
        typer.echo(f"not yet   {name} ({reason})")
    for note in result.notes:
        typer.echo(f"note      {note}")
    typer.echo(f"env       {stack.state.env_file}  (source it to talk to this stack)")
    typer.echo(f"logs      {stack.state.logs}")
    typer.echo("")
    for row in stack.status():
        typer.echo(f"  {row.name:<16} {row.url or '':<48} {'healthy' if row.healthy else 'DOWN'}")
    _print_first_report(stack, commands, result.unavailable)


def _print_first_report(
    stack: LocalStack, commands: frozenset[str], unavailable: dict[str, str]
) -> None:
    intake = next((s for s in stack.config.services if s.name == "intake"), None)
    if intake is None:
        return
    url = intake.url(stack.service_port(intake))
    body = (
        '{"channel":"resident_app","description":"小区门口垃圾堆积多日无人清理，已有异味",'
        '"location":{"lon":111.2865,"lat":30.6919},"occurred_at":"'
        + datetime.now(UTC).isoformat(timespec="seconds")
        + '","reporter":{"name":"张三","phone":"13800138000"}}'
    )
    missing = [f"`onegrid {c}`" for c in ("run", "token") if c not in commands]
    if "intake" in unavailable:
        missing.append(f"intake ({unavailable['intake']})")
    typer.echo("")
    if missing:
        typer.echo(
            f"file a first report (NOT AVAILABLE YET, missing {', '.join(missing)}; "
            "this is what it will be):"
        )
    else:
        typer.echo("file a first report:")
    typer.echo(
        f'  curl -sS -X POST {url}/v1/reports -H "Authorization: Bearer $(.venv/bin/onegrid '
        f'token --role reporter)" -H "Idempotency-Key: $(date +%s%N)" '
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


@app.command()
def down(state_dir: StateDirOption = None) -> None:
    """Stop every process `up` started (and nothing else)."""
    stack = LocalStack(StackConfig(state_dir=_state_dir(state_dir)))
    pids = stack.down()
    typer.echo(f"stopped {len(pids)} processes" if pids else "nothing was running")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list for scripts.")] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Each process: name, pid, URL, health. Exit code 1 if something is not healthy."""
    stack = LocalStack(StackConfig(state_dir=_state_dir(state_dir)))
    rows = stack.status()
    if as_json:
        typer.echo(json.dumps([row.to_json() for row in rows], indent=2))
    elif not rows:
        typer.echo("nothing runs: `onegrid dev up` starts the stack")
    else:
        for row in rows:
            pid = (
                str(row.pid)
                if row.pid is not None
                else ("-" if row.source == "started" else row.source)
            )
            health = "healthy" if row.healthy else "DOWN"
            typer.echo(f"{row.name:<16} {pid:>10}  {health:<8} {row.url or ''}")
    if any(not row.healthy for row in rows):
        raise typer.Exit(1)


@app.command()
def logs(
    name: Annotated[str | None, typer.Argument(help="One process; all of them if omitted.")] = None,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", "--lines")] = 40,
    state_dir: StateDirOption = None,
) -> None:
    """Print (or follow) the logs of the local stack."""
    state = StateDir(_state_dir(state_dir))
    files = sorted(state.logs.glob("*.log")) if state.logs.is_dir() else []
    if name is not None:
        files = [f for f in files if f.stem == name]
        if not files:
            known = ", ".join(f.stem for f in sorted(state.logs.glob("*.log"))) or "none"
            typer.echo(f"no log named {name!r} (known: {known})", err=True)
            raise typer.Exit(2)
    if not files:
        typer.echo(f"no logs in {state.logs}")
        return
    if follow:
        # `tail -F` follows several files across rotation and restarts; prefixes each file.
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run(["tail", "-n", str(lines), "-F", *map(str, files)], check=False)
        return
    for path in files:
        if len(files) > 1:
            typer.echo(f"==> {path.stem} <==")
        typer.echo(tail(path, lines))
