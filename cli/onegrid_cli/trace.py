"""`onegrid trace <case number or id>`: a case's merged timeline as a tree.

Reads dispatch's `GET /v1/cases/{ref}/timeline` (lifecycle events, task messages, the
departments' replies, notifications), so an operator sees where a case waited and why:
steps that took longer than `--slow` seconds since the previous one are highlighted, and
so is every deadline that stood breached (or in warning) at a step. `--json` prints the
merged timeline for scripts.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from onegrid_common.auth import mint_token
from onegrid_common.settings import get_settings

DISPATCH_URL_ENV = "ONEGRID_DISPATCH_URL"
DEFAULT_DISPATCH_URL = "http://127.0.0.1:8103"  # dispatch in the local stack (`onegrid dev up`)
PAGE_SIZE = 500
MAX_PAGES = 100


class TraceError(Exception):
    """The timeline could not be read; the message says why."""


def fetch_timeline(case: str, *, url: str, token: str, timeout_s: float = 15.0) -> dict[str, Any]:
    """Every page of the case's timeline, merged into one body (`items` in time order)."""
    headers = {"Authorization": f"Bearer {token}"}
    body: dict[str, Any] = {}
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    try:
        with httpx.Client(base_url=url, timeout=timeout_s) as client:
            for _ in range(MAX_PAGES):
                params: dict[str, Any] = {"limit": PAGE_SIZE}
                if cursor:
                    params["cursor"] = cursor
                response = client.get(
                    f"/v1/cases/{quote(case, safe='')}/timeline", params=params, headers=headers
                )
                if response.status_code == 404:
                    raise TraceError(f"no case {case!r} at {url}")
                if response.status_code in (401, 403):
                    raise TraceError(f"dispatch at {url} refused the token: {_detail(response)}")
                if response.status_code != 200:
                    raise TraceError(
                        f"dispatch at {url} answered {response.status_code}: {_detail(response)}"
                    )
                body = response.json()
                items += body["items"]
                cursor = body.get("next_cursor")
                if not cursor:
                    break
    except httpx.HTTPError as exc:
        raise TraceError(f"cannot reach dispatch at {url}: {exc}") from exc
    body["items"] = items
    body.pop("next_cursor", None)
    return body


def _detail(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return response.text[:200]
    return str(problem.get("detail") or problem.get("title") or problem)[:200]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _actor(entry: dict[str, Any]) -> str:
    actor = entry.get("actor") or {}
    name = actor.get("id") or actor.get("kind")
    return (
        f"{actor.get('kind')}:{name}"
        if actor.get("kind") and name != actor.get("kind")
        else str(name or "")
    )


def _short_type(entry_type: str) -> str:
    # onegrid.case.dispatched.v1 → case.dispatched
    parts = entry_type.split(".")
    if parts[0] == "onegrid":
        parts = parts[1:]
    if parts and parts[-1].startswith("v") and parts[-1][1:].isdigit():
        parts = parts[:-1]
    return ".".join(parts)


def render_tree(body: dict[str, Any], *, slow_s: float) -> Tree:
    """The timeline as a rich Tree: one branch per step, with its deadlines, the
    department's reference and the trace/span ids beneath it."""
    items: list[dict[str, Any]] = body.get("items", [])
    trace_ids = sorted({e["trace_id"] for e in items if e.get("trace_id")})
    title = Text.assemble(
        ("Case ", "bold"),
        (str(body.get("case_no")), "bold cyan"),
        f"  {body.get('case_id')}  state ",
        (str(body.get("state")), "bold"),
        f"  {len(items)} steps",
    )
    if trace_ids:
        title.append(
            f"  trace {trace_ids[0]}" + (f" (+{len(trace_ids) - 1})" if len(trace_ids) > 1 else ""),
            "dim",
        )
    tree = Tree(title)
    missing = [name for name, status in (body.get("sources") or {}).items() if status != "ok"]
    if missing:
        tree.add(
            Text("sources: " + ", ".join(f"{n} {body['sources'][n]}" for n in missing), "yellow")
        )
    for entry in items:
        since = entry.get("since_previous_s")
        is_slow = since is not None and since >= slow_s
        deadlines = entry.get("deadlines") or []
        short = _short_type(str(entry.get("type", "")))
        # A deadline breached at this step, or the breach itself (case.deadline.breached).
        breached = [str(d["kind"]) for d in deadlines if d.get("standing") == "breached"]
        if short == "case.deadline.breached" and not breached:
            breached = [str((entry.get("payload") or {}).get("kind") or "deadline")]
        warned = short == "case.deadline.warning" or any(
            d.get("standing") == "warning" for d in deadlines
        )
        line = Text()
        line.append(str(entry.get("at", ""))[:19].replace("T", " "), "dim")
        line.append("  ")
        line.append(
            f"+{_duration(since)}" if since is not None else "start",
            "bold yellow" if is_slow else "dim",
        )
        line.append("  ")
        line.append(f"[{entry.get('kind')}] ", "magenta")
        line.append(short, "bold red" if breached else "bold yellow" if warned else "bold")
        if entry.get("unit_code"):
            line.append(f"  unit {entry['unit_code']}", "cyan")
        actor = _actor(entry)
        if actor:
            line.append(f"  by {actor}", "dim")
        summary = str(entry.get("summary") or "")
        if summary and summary not in (short, entry.get("type")):
            line.append(f"  {summary}")
        if is_slow:
            line.append(f"  SLOW (>= {_duration(slow_s)})", "bold yellow")
        if breached:
            line.append("  BREACHED " + ",".join(breached), "bold red")
        elif warned:
            line.append("  WARNING", "yellow")
        node = tree.add(line)
        if entry.get("reason"):
            node.add(Text(f"reason: {entry['reason']}", "italic"))
        if entry.get("external_ref"):
            node.add(Text(f"department ref: {entry['external_ref']}", "cyan"))
        for d in deadlines:
            style = {"breached": "bold red", "warning": "yellow", "met": "green"}.get(
                d.get("standing", ""), "dim"
            )
            remaining = float(d.get("remaining_s", 0.0))
            when = (
                f"{_duration(remaining)} left"
                if remaining >= 0
                else f"{_duration(-remaining)} overdue"
            )
            node.add(
                Text(
                    f"{d.get('kind')} deadline: {d.get('standing')}"
                    f" ({when}, due {d.get('due_at')})",
                    style,
                )
            )
        if entry.get("trace_id"):
            node.add(Text(f"trace {entry['trace_id']} span {entry.get('span_id')}", "dim"))
    return tree


def trace(
    case: Annotated[str, typer.Argument(help="The case number (e.g. 4205-20261123-000042) or id.")],
    url: Annotated[
        str,
        typer.Option("--url", envvar=DISPATCH_URL_ENV, help="Dispatch's base URL."),
    ] = DEFAULT_DISPATCH_URL,
    slow: Annotated[
        float,
        typer.Option(
            "--slow", min=0.0, help="Highlight steps that took at least this many seconds."
        ),
    ] = 3600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="ONEGRID_TOKEN",
            help="Bearer token; default: a development operator token minted here.",
        ),
    ] = None,
) -> None:
    """Print a case's timeline across every service and department, as a tree."""
    if not case.strip():
        typer.echo("error: give a case number or id", err=True)
        raise typer.Exit(code=2)
    if token is None:
        settings = get_settings()
        if settings.environment == "prod":
            typer.echo(
                "give --token (or ONEGRID_TOKEN) in prod; no token is minted there.", err=True
            )
            raise typer.Exit(code=2)
        token = mint_token("onegrid-trace", ["operator"], settings=settings.security)
    try:
        body = fetch_timeline(case, url=url.rstrip("/"), token=token)
    except TraceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    if as_json:
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    console = Console()
    if not console.is_terminal:
        # Piped or captured: whole lines, never cut at 80 columns.
        console = Console(width=500)
    console.print(render_tree(body, slow_s=slow))
