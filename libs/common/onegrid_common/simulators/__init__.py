"""Department simulators: real HTTP servers that behave like department systems (their
own formats, latency, errors, outages, refusals), for development and tests only.

    python -m onegrid_common.simulators urban --port 8201 --latency-ms 50,300 --error-rate 0.05

No adapter imports this package; production deployments do not run it.
"""
