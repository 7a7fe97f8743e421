"""`onegrid`: the front door for people. Each command group lives in its own module."""

from __future__ import annotations

import typer

from onegrid_cli import bench, deploy, dev, scores, seed, services, token, trace

app = typer.Typer(
    name="onegrid",
    help="onegrid: one case flow for city grid governance.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(dev.app, name="dev")
app.add_typer(services.topics_app, name="topics")
app.add_typer(deploy.app, name="deploy")
app.add_typer(seed.app, name="seed")
app.add_typer(scores.app, name="scores")
app.command()(services.run)
app.command()(services.migrate)
app.command()(token.token)
app.command("trace")(trace.trace)
app.command()(bench.bench)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def simulate(ctx: typer.Context, kind: str, port: int | None = None) -> None:
    """Run a simulator (development and tests only): a department (urban, police, civil,
    webhook) or a notification gateway (sms, push, mail); see --help of the kind."""
    argv = [kind, *(["--port", str(port)] if port else []), *ctx.args]
    if kind in ("sms", "push", "mail"):
        from onegrid_notification.simulators.__main__ import main as gateway_main

        gateway_main(argv)
        return
    from onegrid_common.simulators.cli import main as simulate_main

    simulate_main(argv)


if __name__ == "__main__":
    app()
