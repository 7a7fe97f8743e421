"""Command line of the simulators: `python -m onegrid_common.simulators KIND --port N`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fastapi import FastAPI

from onegrid_common.simulators.base import SimBehaviour, serve

KINDS = ("urban", "police", "civil", "webhook")
DEV_PORTS = {"urban": 8201, "police": 8202, "civil": 8203, "webhook": 8204}


def _pair(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(",") if "," in text else text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: give two numbers, e.g. 50,300")
    try:
        return float(low), float(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not two numbers") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onegrid simulate", description=__doc__)
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--port", type=int, default=None, help="default: the dev port of the kind")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--latency-ms", type=_pair, default=(0.0, 0.0), help="min,max")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of HTTP 500s")
    p.add_argument(
        "--outage",
        type=_pair,
        action="append",
        default=[],
        help="start:end seconds after start when it is down (repeatable)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--secret", default=None, help="police/webhook: callback signing secret")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="status changes come this many times faster (urban, police, webhook)",
    )
    p.add_argument("--review-days", type=int, default=3, help="civil: days a review takes")
    p.add_argument(
        "--day-seconds", type=float, default=60.0, help="civil: how long one simulated day lasts"
    )
    p.add_argument(
        "--refuse",
        action="append",
        default=[],
        help="urban: 大类 code to refuse; webhook: title to refuse (repeatable)",
    )
    return p


def build(args: argparse.Namespace) -> FastAPI:
    behaviour = SimBehaviour(
        latency_ms=(int(args.latency_ms[0]), int(args.latency_ms[1])),
        error_rate=args.error_rate,
        outages=list(args.outage),
        seed=args.seed,
    )
    speed = max(args.speed, 1e-6)
    if args.kind == "urban":
        from onegrid_common.simulators.urban import UrbanSim

        return UrbanSim(
            behaviour,
            progress_after_s=30 / speed,
            complete_after_s=120 / speed,
            refuse_classes=frozenset(args.refuse),
        ).app()
    if args.kind == "police":
        from onegrid_common.simulators.police import PoliceSim

        delays = (20 / speed, 60 / speed, 180 / speed)
        if args.secret:
            return PoliceSim(behaviour, secret=args.secret, status_delays_s=delays).app()
        return PoliceSim(behaviour, status_delays_s=delays).app()
    if args.kind == "civil":
        from onegrid_common.simulators.civil import CivilSim

        return CivilSim(behaviour, review_days=args.review_days, day_seconds=args.day_seconds).app()
    from onegrid_common.simulators.webhook import WebhookSim

    delays2 = (30 / speed, 120 / speed)
    if args.secret:
        return WebhookSim(
            behaviour,
            secret=args.secret,
            refuse_values=frozenset(args.refuse),
            state_delays_s=delays2,
        ).app()
    return WebhookSim(behaviour, refuse_values=frozenset(args.refuse), state_delays_s=delays2).app()


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    serve(build(args), host=args.host, port=args.port or DEV_PORTS[args.kind])
