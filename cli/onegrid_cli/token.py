"""`onegrid token`: mint a development bearer token for trying the HTTP APIs.

curl -H "Authorization: Bearer $(onegrid token --role operator)" ...
"""

from __future__ import annotations

from typing import Annotated

import typer

from onegrid_common.auth import mint_token, unit_role
from onegrid_common.settings import get_settings


def token(
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            "-r",
            help="reporter, grid_worker, operator, auditor, admin, service or unit:<code>; "
            "repeat for several.",
        ),
    ] = None,
    unit: Annotated[
        list[str] | None,
        typer.Option("--unit", "-u", help="Adds the role unit:<CODE>; repeat for several."),
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", "-g", help="A grid code the grid worker covers; repeatable."),
    ] = None,
    subject: Annotated[str, typer.Option("--subject", "-s", help="The token's subject.")] = "dev",
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    ttl: Annotated[
        int | None,
        typer.Option("--ttl", min=1, help="Lifetime in seconds (default: the jwt_ttl_s setting)."),
    ] = None,
) -> None:
    """Print a signed development token (refused when ONEGRID_ENVIRONMENT=prod)."""
    settings = get_settings()
    if settings.environment == "prod":
        # Production tokens come from the city's identity provider, never from a CLI.
        typer.echo("onegrid token mints development tokens only; refused in prod.", err=True)
        raise typer.Exit(code=2)
    try:
        roles = list(role or []) + [unit_role(code) for code in unit or []]
        if not roles:
            raise ValueError("give at least one --role or --unit")
        value = mint_token(
            subject,
            roles,
            settings=settings.security,
            ttl_s=ttl,
            name=name,
            grid_codes=grid or [],
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(value)
