"""`onegrid run`, `onegrid migrate`, `onegrid topics apply`: operating the services."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from onegrid_common.settings import get_settings
from onegrid_contracts.catalogue import ADAPTER_UNITS, SERVICES, all_topics

topics_app = typer.Typer(help="Kafka topics from the contracts catalogue.")


def run(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVICES)}")],
    port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default ONEGRID_HTTP_HOST)")
    ] = None,
) -> None:
    """Run one service (HTTP API, consumers, outbox relay) until SIGTERM."""
    from onegrid_common import service as service_runtime  # heavy: imported when used

    try:
        service_runtime.run(name, host=host, port=port)
    except LookupError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from exc


def migrate(
    names: Annotated[
        list[str] | None, typer.Argument(help="Services to migrate (default: all)")
    ] = None,
) -> None:
    """Apply each service's pending migrations to its own schema."""
    from onegrid_common import service as service_runtime

    settings = get_settings()

    async def go() -> None:
        for name in names or SERVICES:
            try:
                definition = service_runtime.load_service(name)
            except LookupError as exc:
                typer.echo(f"{name}: skipped ({exc})")
                continue
            runtime = service_runtime.Runtime(service=definition, settings=settings)
            applied = await runtime.migrate()
            typer.echo(f"{name}: " + (", ".join(applied) if applied else "up to date"))

    asyncio.run(go())


@topics_app.command("apply")
def topics_apply(
    unit: Annotated[
        list[str] | None,
        typer.Option(help="Adapter unit codes (default: urban, police, civil, housing)"),
    ] = None,
) -> None:
    """Create every catalogue topic that is missing, with its partitions and retention."""
    from onegrid_common.kafka_admin import ensure_topics

    settings = get_settings()
    specs = all_topics(unit or ADAPTER_UNITS)
    asyncio.run(ensure_topics(settings.kafka.bootstrap_servers, specs, security=settings.kafka))
    for spec in specs:
        typer.echo(f"{spec.name}  partitions={spec.partitions}  cleanup={spec.cleanup_policy}")
