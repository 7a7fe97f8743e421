"""`onegrid scores rebuild`: recompute the scoring service's scores from its stored facts."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onegrid_common.settings import get_settings

app = typer.Typer(help="Scores of units, grid workers and grids (the scoring service).")


@app.command("rebuild")
def rebuild(
    period: Annotated[
        str | None,
        typer.Option(help="Only this period: '2026-11' (workers, grids) or '2026-Q4' (units)."),
    ] = None,
) -> None:
    """Recompute every score from the stored case events and check-ins (frozen periods
    from the events they were frozen with), publish what changed, rewrite the rankings."""
    try:
        from onegrid_scoring.rebuild import PeriodError
        from onegrid_scoring.rebuild import rebuild as run_rebuild
    except ModuleNotFoundError as exc:  # a CLI installed without the scoring service
        raise typer.BadParameter("the onegrid-scoring package is not installed") from exc
    try:
        outcomes = asyncio.run(run_rebuild(get_settings(), period))
    except PeriodError as exc:
        raise typer.BadParameter(str(exc), param_hint="--period") from exc
    for o in outcomes:
        state = "frozen" if o.final else "live"
        typer.echo(
            f"{o.kind.value:6} {o.period:8} {state:6} subjects={o.subjects} changed={o.changed}"
        )
    typer.echo(f"{len(outcomes)} period(s) recomputed")
