"""`onegrid seed demo-city [--seed N]`: the demo city into the registry (tables + outbox).

The registry service's outbox relay then publishes it to the `registry.*` topics (at once
if the service runs, else when it starts). Running it again changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onegrid_common.settings import get_settings

app = typer.Typer(help="Seed data into the services.", no_args_is_help=True)


@app.command("demo-city")
def demo_city(
    seed: Annotated[int, typer.Option(help="Generator seed: same seed, same city.")] = 1,
) -> None:
    """Write the Yichang demo city (1,110 grids, units, staff, categories, routes, calendars)
    into the registry; idempotent."""
    # The registry package is imported here only: other commands must not need it.
    from onegrid_registry.db.seed import seed_demo_city

    counts = asyncio.run(seed_demo_city(get_settings().db, seed=seed))
    total = sum(counts.values())
    for topic, changed in counts.items():
        typer.echo(f"{topic:28} {changed:6d} changed")
    typer.echo(
        f"demo city (seed {seed}): {total} entities written"
        if total
        else f"demo city (seed {seed}): already up to date, nothing written"
    )
