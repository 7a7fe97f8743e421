"""`onegrid bench`: a city's load end to end, measured against the machine's own limits.

- `stack`: a local stack (the `onegrid dev` machinery) tuned for a bench: fast department
  simulators and adapter polling, rate limits off, quiet logs, its own database and state.
- `city`: the demo city as the registry serves it; reports with a category mix and
  hotspots.
- `driver`: posts reports at a set rate through intake's HTTP API, follows every case on
  `cases.events.v1` and the unit reply topics, and plays grid workers, workbench units and
  reporters through dispatch's HTTP API.
- `limits`: the broker's raw produce+consume rate and PostgreSQL's insert-commit rate.
- `procs`: CPU seconds and peak RSS per process of the stack.
- `report`: percentiles and the result document.
- `run`: `run_bench(BenchConfig) -> dict`, the whole thing.
"""
