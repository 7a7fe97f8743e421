"""`python -m onegrid_dispatch --port N`: the dispatch service on its own (as `onegrid run`)."""

from __future__ import annotations

import argparse

from onegrid_common.service import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="onegrid_dispatch")
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--host", default=None)
    args = parser.parse_args()
    run("dispatch", host=args.host, port=args.port)
