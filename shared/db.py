"""Postgres adapter: a thread-safe pg8000 connection pool and a transaction context manager.

Connections come from DATABASE_URL (libpq URI form, TCP or the Cloud SQL unix-socket form
`postgresql://user:pass@/db?host=/cloudsql/PROJECT:REGION:INSTANCE`) or, when
CLOUD_SQL_INSTANCE is set, from the Cloud SQL Python Connector (`shared.cloud_sql`).

SQL uses pg8000's `:name` parameters; nothing is ever formatted into a statement.
`Database.transaction()` rolls back unless the block calls `tx.commit()`.

Why a pool of our own rather than SQLAlchemy's (the one Google's Cloud SQL samples use with
pg8000): importing SQLAlchemy costs about 155 ms of every cold start, and every function opens
Postgres (the heartbeat only on its fallback). What the pool must get right is small and is
tested by injecting each failure kind (tests/integration/test_db_pool.py): a connection goes
back only when Postgres itself reported every error and the rollback left it idle; anything
else (encoding, conversion, socket, protocol) discards it, and every path out of a
transaction returns or discards its connection.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from shared import oplog
from shared.config import Settings
from shared.errors import ConfigError, ServiceUnavailable

if TYPE_CHECKING:
    from pg8000.core import CoreConnection

log = logging.getLogger(__name__)


# pg8000 (and the Cloud SQL connector) are imported on first use, not at import: the heartbeat
# bundle never opens a Postgres connection while Valkey is up, and importing the driver cost a
# tenth of its cold start. Every `except` below that names a driver error runs only after a
# connection was attempted, so the driver is loaded by then (an except clause is evaluated
# only when an exception reaches it).
@functools.cache
def _pg8000() -> Any:
    import pg8000.native

    return pg8000.native


@functools.cache
def _errors() -> Any:
    from pg8000 import exceptions

    return exceptions


@functools.lru_cache(maxsize=2048)
def _statement(sql: str) -> tuple[str, Callable[[dict[str, Any]], Any]]:
    """pg8000's `:name` → `$n` rewrite of a statement, once per distinct SQL text: it is a
    character-by-character Python loop (≈0.1 ms per statement, more than the round trip on a
    busy request); the SQL texts are constants, so the cache stays small."""
    statement, make_vals = _pg8000().to_statement(sql)
    return statement, make_vals


@functools.cache
def _connection_errors() -> tuple[type[BaseException], ...]:
    return (_errors().InterfaceError, OSError, socket.timeout)


# Postgres itself refusing or ending the connection: unavailability (503), never a bug (500).
# https://www.postgresql.org/docs/current/errcodes-appendix.html
_UNAVAILABLE_SQLSTATES = frozenset(
    {
        "53300",  # too_many_connections (max_connections, or the role's CONNECTION LIMIT)
        "57P01",  # admin_shutdown: the backend was terminated (a restart, pg_terminate_backend)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up, shutting down, in recovery
    }
)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means Postgres cannot be reached or will not serve us now.

    A socket or protocol failure, a timeout, or an error Postgres reported with a SQLSTATE of
    the connection-exception class (08xxx) or one of `_UNAVAILABLE_SQLSTATES`.
    """
    if isinstance(exc, _connection_errors()):
        return True
    if isinstance(exc, _errors().DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        code = str(exc.args[0].get("C", ""))
        return code.startswith("08") or code in _UNAVAILABLE_SQLSTATES
    return False


Row = dict[str, Any]


RETRY_AFTER_SECONDS = 2  # a pool queue clears in ms; a Postgres restart or failover takes seconds


class DatabaseUnavailable(ServiceUnavailable):
    """Raised when no connection to Postgres can be made or kept (503 with Retry-After)."""

    code = "DATABASE_UNAVAILABLE"
    default_message = "database temporarily unavailable"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class ConnParams(NamedTuple):
    """Where and how to connect, parsed from a libpq URI."""

    user: str
    database: str
    password: str | None = None
    host: str | None = None
    port: int = 5432
    unix_sock: str | None = None
    application_name: str = "bestie"
    sslmode: str = "disable"

    @property
    def ssl(self) -> bool:
        """TLS is required (sslmode require, verify-ca or verify-full)."""
        return self.sslmode in ("require", "verify-ca", "verify-full")

    @property
    def ssl_context(self) -> bool | None:
        """pg8000's `ssl_context` for the URL's sslmode: True requires TLS (require, verify-*);
        None asks for it and goes on in plain text when refused (prefer, allow); False never asks
        (disable). pg8000 treats None as prefer, which costs every new connection an SSLRequest
        round trip and an `ssl.create_default_context()` (the system trust store, tens of ms of
        CPU) even for a server on loopback (pg8000/core.py `_make_socket`)."""
        if self.ssl:
            return True
        return False if self.sslmode == "disable" else None


def parse_database_url(url: str) -> ConnParams:
    """Parse a libpq URI, including `?host=/cloudsql/...` unix-socket directories."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError("DATABASE_URL must start with postgresql://")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = query.get("host") or (unquote(parts.hostname) if parts.hostname else None)
    try:
        port = int(query.get("port") or parts.port or 5432)
    except ValueError:
        raise ConfigError("DATABASE_URL has an invalid port") from None
    user = unquote(parts.username or query.get("user") or "postgres")
    password = unquote(parts.password) if parts.password else query.get("password")
    database = unquote(parts.path.lstrip("/")) or query.get("dbname") or user
    unix_sock = None
    if host and host.startswith("/"):
        unix_sock, host = f"{host.rstrip('/')}/.s.PGSQL.{port}", None
    if not host and not unix_sock:
        host = "localhost"
    sslmode = query.get("sslmode", "disable" if unix_sock or host in ("localhost", "127.0.0.1") else "prefer")
    return ConnParams(
        user=user,
        database=database,
        password=password,
        host=host,
        port=port,
        unix_sock=unix_sock,
        sslmode=sslmode,
        application_name=query.get("application_name", "bestie"),
    )


class Tx:
    """One connection inside one transaction. Rolled back on exit unless `commit()` was called.

    The connection is *in step* while every statement either completed or failed with an
    error Postgres reported itself (an ErrorResponse, read up to ReadyForQuery). Any other
    failure (a parameter that cannot be encoded, a socket error, an interrupt) can leave
    replies unread on the socket, so the Tx refuses further statements and the pool
    discards the connection instead of rolling it back and lending it to someone else.
    """

    def __init__(self, conn: CoreConnection) -> None:
        self._conn = conn
        self.committed = False
        self.in_step = True
        self._before_commit: dict[str, Callable[[Tx], None]] = {}
        self._after_commit: dict[str, Callable[[], None]] = {}

    def before_commit(self, name: str, hook: Callable[[Tx], None]) -> None:
        """Run `hook(tx)` as the last statements of the transaction, right before COMMIT (once per name)."""
        self._before_commit.setdefault(name, hook)

    def after_commit(self, name: str, hook: Callable[[], None]) -> None:
        """Run `hook()` once the COMMIT succeeded (once per name); its failure is logged, never raised."""
        self._after_commit.setdefault(name, hook)

    def _run(self, op: Callable[..., Any], *args: Any) -> Any:
        if not self.in_step:
            raise _errors().InterfaceError("connection is out of step after an earlier failure")
        self.in_step = False
        try:
            result = op(*args)
        except _errors().DatabaseError:
            self.in_step = True  # reported by Postgres after ReadyForQuery: nothing left unread
            raise
        self.in_step = True
        return result

    def _execute(self, sql: str, params: dict[str, Any]) -> Any:
        statement, make_vals = _statement(sql)
        prepare = isinstance(sql, Prepared)
        return self._run(_execute_once, self._conn, statement, make_vals(params), prepare)

    def rows(self, sql: str, **params: Any) -> list[Row]:
        """Run a statement; return its rows as dicts."""
        ctx = self._execute(sql, params)
        if not ctx.columns:
            return []
        names = [c["name"] for c in ctx.columns]
        return [dict(zip(names, row, strict=True)) for row in ctx.rows]

    def one(self, sql: str, **params: Any) -> Row | None:
        """Run a statement; return its first row as a dict, or None."""
        found = self.rows(sql, **params)
        return found[0] if found else None

    def scalar(self, sql: str, **params: Any) -> Any:
        """Run a statement; return the first column of the first row, or None."""
        ctx = self._execute(sql, params)
        return ctx.rows[0][0] if ctx.rows else None

    def execute(self, sql: str, **params: Any) -> int:
        """Run a statement; return the number of rows it affected."""
        return int(self._execute(sql, params).row_count)

    def script(self, sql: str) -> None:
        """Run parameterless SQL text that may hold several statements (migrations)."""
        self._run(self._conn.execute_simple, sql)

    def set_statement_timeout(self, ms: int, *, local: bool) -> None:
        """SET [LOCAL] statement_timeout, and the read timeout that goes with it (a migration's
        10 minutes must not be cut by the request pool's read timeout). The pool restores its
        own read timeout when the connection comes back."""
        self.script(f"{'SET LOCAL' if local else 'SET'} statement_timeout = {int(ms)}")  # an int, not input
        _set_read_timeout(self._conn, read_timeout(int(ms)))

    def commit(self) -> None:
        """Commit the transaction (after its before-commit hooks); the block should end right after."""
        while self._before_commit:
            hook = self._before_commit.pop(next(iter(self._before_commit)))
            hook(self)
        self._run(self._conn.execute_simple, "COMMIT")
        self.committed = True
        hooks, self._after_commit = list(self._after_commit.values()), {}
        for after in hooks:
            try:
                after()
            except Exception:
                log.exception("after-commit hook failed")

    def rollback(self) -> bool:
        """Roll back; True when the connection is still in step and idle afterwards."""
        if not self.in_step:
            return False
        try:
            self._run(self._conn.execute_simple, "ROLLBACK")
        except Exception:
            return False
        return _transaction_status(self._conn) == _IDLE


class Prepared(str):
    """SQL text that each connection parses and plans once, then only binds and executes.

    For a hot statement whose planning costs more than its execution (a refresh's rotation,
    four CTEs: ≈0.23 ms to plan, ≈0.13 ms to run). Opt-in, not the default: Postgres plans a
    prepared statement generically after five runs when that looks no worse, which suits a
    lookup by key but not a query whose best plan depends on its parameters.
    https://www.postgresql.org/docs/current/sql-prepare.html#SQL-PREPARE-NOTES
    """

    __slots__ = ()


_PREPARED_PER_CONNECTION = 64  # a handful of hot statements; beyond this they run unnamed


def _prepared_names(conn: CoreConnection) -> dict[str, bytes]:
    """The statements this connection has prepared, by SQL text (kept on the connection, so
    they go with it when it is discarded)."""
    names: dict[str, bytes] | None = getattr(conn, "_bestie_prepared", None)
    if names is None:
        names = {}
        conn._bestie_prepared = names
    return names


def _execute_once(conn: CoreConnection, statement: str, vals: Any, prepare: bool) -> Any:
    """One statement of the extended protocol in one round trip.

    pg8000's `execute_unnamed` waits for the server three times per statement (after Parse,
    after Describe, after Execute), so every statement cost three round trips. Its results
    are all in text format, so nothing sent depends on a reply: Parse (unless the connection
    prepared this statement already), Bind, Describe (portal), Execute and Sync go out
    together and the replies are read once, up to ReadyForQuery. After an error Postgres
    skips to the Sync and still answers ReadyForQuery, so the connection stays in step
    exactly as before. A prepared statement is remembered only once a run of it succeeded;
    its name is closed before each Parse (closing an unknown name is no error), so a Parse
    that succeeded before a failed run is replaced, not duplicated.
    https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
    """
    from pg8000 import core

    params = core.make_params(conn.py_types, vals)  # before anything is written: a bad value sends nothing
    names = _prepared_names(conn)
    name = names.get(statement) if prepare else None
    parse = name is None
    if prepare and name is None and len(names) < _PREPARED_PER_CONNECTION:
        name = b"bestie_" + hashlib.sha256(statement.encode()).hexdigest()[:24].encode() + core.NULL_BYTE
        conn._send_message(core.CLOSE, core.STATEMENT + name)
    target = name or core.NULL_BYTE
    context = core.Context(statement)
    if parse:
        conn.send_PARSE(target, statement, ())
    conn.send_BIND(target, params)
    conn._send_message(core.DESCRIBE, core.PORTAL + core.NULL_BYTE)
    core._write(conn._sock, core.EXECUTE_MSG)
    core._write(conn._sock, core.SYNC_MSG)
    core._flush(conn._sock)
    try:
        conn.handle_messages(context)
    except core.DatabaseError:
        names.pop(statement, None)  # parsed again (after a Close) next time
        raise
    if name is not None:
        names[statement] = name
    return context


# Postgres's text output of dates and times (ISO, its default DateStyle), read with the C
# parser of ISO 8601 instead of pg8000's `strptime` (about 19 µs a value against 0.4 µs: two
# timestamps cost a refresh more than its JWT). Anything `fromisoformat` refuses (infinity,
# BC dates, a year past 9999, another DateStyle) goes to pg8000's own reader, which returns
# what it returned before.
# https://www.postgresql.org/docs/current/datatype-datetime.html#DATATYPE-DATETIME-OUTPUT
_DATE, _TIMESTAMP, _TIMESTAMPTZ = 1082, 1114, 1184  # type OIDs (pg_type)


def _iso_reader(parse: Callable[[str], Any], fallback: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(data: str) -> Any:
        try:
            return parse(data)
        except ValueError:
            return fallback(data)

    return read


def _fast_date_readers(conn: CoreConnection) -> None:
    from pg8000 import converters

    conn.register_in_adapter(_DATE, _iso_reader(date.fromisoformat, converters.date_in))
    conn.register_in_adapter(_TIMESTAMP, _iso_reader(datetime.fromisoformat, converters.timestamp_in))
    conn.register_in_adapter(_TIMESTAMPTZ, _iso_reader(datetime.fromisoformat, converters.timestamptz_in))


def _transaction_status(conn: CoreConnection) -> bytes | None:
    """The status byte of the connection's last ReadyForQuery (b"I" idle, b"T", b"E")."""
    status: bytes | None = getattr(conn, "_transaction_status", None)
    return status


_IDLE = b"I"
_IN_TRANSACTION = b"T"


def _no_delay(conn: CoreConnection) -> None:
    """Send every message at once (TCP_NODELAY), as libpq does on each TCP connection.

    Neither pg8000 nor the Cloud SQL connector turns Nagle's algorithm off (tcp(7)). A message
    larger than pg8000's write buffer then leaves in several segments, and the last one waits
    for the server's delayed ACK, about 40 ms on Linux, once per statement with a large
    parameter: the sweeps send up to 10^5 ids in one. pg8000 keeps its socket in `_usock`
    (raw or TLS; a test checks that every pooled TCP connection has the option set).
    """
    sock = getattr(conn, "_usock", None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# Postgres cancels a statement at statement_timeout (a clean error; the connection stays
# usable); the client's read timeout sits this much later, so it fires only when the server
# or the network is gone. Without one, a read from a vanished server blocks its request
# thread until the platform's request timeout: the Cloud SQL connector hands pg8000 a socket
# with no timeout, and pg8000 sets none on a socket it is given.
READ_TIMEOUT_MARGIN_SECONDS = 5.0


def read_timeout(statement_timeout_ms: int) -> float | None:
    """The socket read timeout for a connection whose statements end at `statement_timeout_ms`
    (0: no limit on statements, so none on reads either)."""
    return statement_timeout_ms / 1000 + READ_TIMEOUT_MARGIN_SECONDS if statement_timeout_ms > 0 else None


def _set_read_timeout(conn: CoreConnection, seconds: float | None) -> None:
    sock = getattr(conn, "_usock", None)  # raw or TLS, as in _no_delay
    if sock is not None:
        sock.settimeout(seconds)


class Database:
    """A bounded, thread-safe pool of pg8000 connections, opened lazily."""

    def __init__(self, settings: Settings, *, connect: Callable[[], CoreConnection] | None = None) -> None:
        self._settings = settings
        self._connect = connect or _connector_for(settings)
        self._idle: queue.LifoQueue[CoreConnection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(settings.db_pool_size)
        self._lock = threading.Lock()
        self._open = 0
        self._in_use = 0
        self._closed = False

    @property
    def open_connections(self) -> int:
        """Connections currently open (idle + in use)."""
        return self._open

    @property
    def idle_connections(self) -> int:
        return self._idle.qsize()

    @property
    def in_use(self) -> int:
        """Connections lent out right now (0 when every request has given its one back)."""
        return self._in_use

    def _checkout(self) -> CoreConnection:
        if not self._slots.acquire(timeout=self._settings.db_pool_timeout_seconds):
            oplog.emit(
                "db.pool_exhausted",
                pool_size=self._settings.db_pool_size,
                wait_seconds=float(self._settings.db_pool_timeout_seconds),
            )
            raise DatabaseUnavailable("database pool exhausted")
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._new_connection()
                with self._lock:
                    self._open += 1
            with self._lock:
                self._in_use += 1
            return conn
        except BaseException:
            self._slots.release()
            raise

    def _new_connection(self) -> CoreConnection:
        try:
            conn = self._connect()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("postgres connect failed", extra={"error": type(exc).__name__, "detail": str(exc)[:300]})
            raise DatabaseUnavailable() from exc
        try:
            _no_delay(conn)
            _fast_date_readers(conn)
            timeout = int(self._settings.db_statement_timeout_ms)
            conn.execute_simple(f"SET statement_timeout = {timeout}")  # an int we parsed, not input
            _set_read_timeout(conn, read_timeout(timeout))
            return conn
        except BaseException as exc:
            with contextlib.suppress(Exception):
                conn.close()
            if is_unavailable(exc):
                log.warning("postgres connect failed", extra={"error": type(exc).__name__, "detail": str(exc)[:300]})
                raise DatabaseUnavailable() from exc
            raise

    def _checkin(self, conn: CoreConnection, healthy: bool) -> None:
        try:
            with self._lock:
                self._in_use -= 1
            if healthy and not self._closed and _transaction_status(conn) == _IDLE:
                _set_read_timeout(conn, read_timeout(int(self._settings.db_statement_timeout_ms)))
                self._idle.put(conn)
            else:
                self._discard(conn)
        finally:
            self._slots.release()

    def _discard(self, conn: CoreConnection) -> None:
        with self._lock:
            self._open -= 1
        with contextlib.suppress(Exception):
            conn.close()

    def _begin(self) -> CoreConnection:
        """Check out a connection and open a transaction on it, replacing dead pooled ones.

        Every way out either returns the connection inside a transaction or has given it back
        (discarded): a pooled connection that cannot even BEGIN is never reused.
        """
        last: BaseException | None = None
        for _ in range(2):
            conn = self._checkout()
            try:
                conn.execute_simple("BEGIN")
            except BaseException as exc:
                self._checkin(conn, healthy=False)
                if not isinstance(exc, Exception):
                    raise
                last = exc
                if is_unavailable(exc):
                    # The server restarted or dropped us: every idle connection is suspect too.
                    self.close_idle()
                else:
                    log.warning("discarded a pooled connection that failed BEGIN", extra={"error": type(exc).__name__})
                continue
            if _transaction_status(conn) == _IN_TRANSACTION:
                return conn
            log.warning("discarded a pooled connection out of step on BEGIN")
            self._checkin(conn, healthy=False)
        raise DatabaseUnavailable() from last

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Yield a Tx in an open transaction; roll back unless the block committed.

        The connection goes back to the pool only when it is known to be in step and idle;
        after any failure Postgres did not report itself it is closed instead.
        """
        conn = self._begin()
        tx = Tx(conn)
        healthy = False
        try:
            try:
                yield tx
            except BaseException:
                healthy = tx.rollback()
                raise
            healthy = tx.in_step if tx.committed else tx.rollback()
        except Exception as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable() from exc
            raise
        finally:
            self._checkin(conn, healthy)

    @contextlib.contextmanager
    def dedicated(self) -> Iterator[Tx]:
        """Yield a Tx on a connection of its own, outside the pool and in autocommit, closed after.

        For work that must not happen inside one transaction (session-level advisory locks,
        `CREATE INDEX CONCURRENTLY`) or that changes session settings no pooled request may
        inherit. Each statement commits by itself; nothing is rolled back on exit.
        """
        conn = self._new_connection()
        try:
            yield Tx(conn)
        except _connection_errors() as exc:
            raise DatabaseUnavailable() from exc
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def rows(self, sql: str, **params: Any) -> list[Row]:
        """Run one read-only statement in its own transaction."""
        with self.transaction() as tx:
            return tx.rows(sql, **params)

    def one(self, sql: str, **params: Any) -> Row | None:
        with self.transaction() as tx:
            return tx.one(sql, **params)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.transaction() as tx:
            return tx.scalar(sql, **params)

    def close(self) -> None:
        """Close the pool: idle connections now, connections in use when returned."""
        self._closed = True
        self.close_idle()

    def close_idle(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            self._discard(conn)


def _connector_for(settings: Settings) -> Callable[[], CoreConnection]:
    if settings.cloud_sql_instance:
        from shared import cloud_sql  # only deployments with CLOUD_SQL_INSTANCE load it

        return cloud_sql.connector(settings)
    if not settings.database_url:
        raise ConfigError("missing required environment variable DATABASE_URL or CLOUD_SQL_INSTANCE")
    params = parse_database_url(settings.database_url)

    def connect() -> CoreConnection:
        conn: CoreConnection = _pg8000().Connection(
            params.user,
            password=params.password,
            database=params.database,
            host=params.host or "localhost",
            port=params.port,
            unix_sock=params.unix_sock,
            ssl_context=params.ssl_context,
            timeout=10,
            application_name=params.application_name,
        )
        return conn

    return connect


def is_unique_violation(exc: BaseException, constraint: str | None = None) -> bool:
    """True when `exc` is a Postgres unique violation (optionally on `constraint`)."""
    if not isinstance(exc, _errors().DatabaseError) or not exc.args or not isinstance(exc.args[0], dict):
        return False
    info = exc.args[0]
    return bool(info.get("C") == "23505" and (constraint is None or info.get("n") == constraint))
