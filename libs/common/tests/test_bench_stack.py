"""The bench's stack settings: what it turns off so its figures mean the same at any hour."""

from __future__ import annotations

from pathlib import Path

from onegrid_common.bench.stack import BenchStackOptions, bench_stack_config


def _env_of(name: str) -> dict[str, str]:
    config = bench_stack_config(
        BenchStackOptions(
            state_dir=Path("/tmp/onegrid-bench-test"),
            postgres_dsn="postgresql://postgres@127.0.0.1:5432/onegrid_bench",
            redis_url="redis://127.0.0.1:6379/12",
        )
    )
    (spec,) = [s for s in config.services if s.name == name]
    return dict(spec.env)


def test_the_bench_sends_notifications_at_any_hour() -> None:
    assert _env_of("notification")["ONEGRID_NOTIFICATION_QUIET_START"] == ""


def test_the_bench_is_not_rate_limited_by_intake() -> None:
    env = _env_of("intake")
    assert env["ONEGRID_INTAKE_REPORTER_RATE_LIMIT"] == "0"
    assert env["ONEGRID_INTAKE_CHANNEL_RATE_LIMIT"] == "0"
