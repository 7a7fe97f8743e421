"""`python -m onegrid_common.simulators KIND --port N [options]` (see cli.py)."""

from onegrid_common.simulators.cli import main

if __name__ == "__main__":
    main()
