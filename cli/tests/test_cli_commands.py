"""The `onegrid` front door lists every command people use."""

from __future__ import annotations

from typer.testing import CliRunner

from onegrid_cli.main import app

COMMANDS = (
    "dev", "topics", "deploy", "seed", "scores", "run", "migrate", "token", "trace", "bench",
    "simulate",
)  # fmt: skip


def test_every_command_is_listed_and_has_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0, listing.output
    for command in COMMANDS:
        assert f" {command} " in listing.output, command
        assert runner.invoke(app, [command, "--help"]).exit_code == 0, command
