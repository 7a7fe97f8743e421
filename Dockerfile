# syntax=docker/dockerfile:1.7
# One image per onegrid service, chosen by build argument:
#   docker build --build-arg SERVICE=intake -t onegrid/intake:dev .
# The image holds only that service's package, the `onegrid` CLI and their locked
# dependencies (uv.lock). It runs as a non-root user and writes nothing outside /tmp, so it
# runs with a read-only root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG UV_VERSION=0.13.8
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<service name>, e.g. intake" >&2; exit 1; }
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY . .
# --frozen: exactly uv.lock; --no-editable: the venv needs no source tree at run time.
# SERVICE=all: every workspace package (docker-compose's topic and migration step, simulators).
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ "${SERVICE}" = all ]; then \
        uv sync --frozen --no-dev --no-editable; \
    else \
        uv sync --frozen --no-dev --no-editable \
            --package onegrid-cli --package "onegrid-${SERVICE}" \
     && /app/.venv/bin/python -c "import importlib, sys; importlib.import_module('onegrid_' + sys.argv[1].replace('-', '_'))" "${SERVICE}"; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="onegrid-${SERVICE}" \
      org.opencontainers.image.description="onegrid ${SERVICE} service" \
      org.opencontainers.image.source="https://github.com/onegrid/onegrid"
RUN groupadd --system --gid 10001 onegrid \
 && useradd --system --uid 10001 --gid onegrid --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin onegrid
# Owned by root and read-only for the service user: the code cannot be changed at run time.
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    ONEGRID_HTTP_HOST=0.0.0.0 \
    ONEGRID_SERVICE=${SERVICE}
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
# Kubernetes and docker-compose pass `run <service> --port 8000` or `migrate <service>`.
ENTRYPOINT ["onegrid"]
CMD ["--help"]
