"""The pg8000 pool against a real Postgres: concurrency, rollback, recovery."""

import contextlib
import socket
import threading
import uuid
from dataclasses import replace

import pytest
from pg8000 import core as pg8000_core
from pg8000.exceptions import DatabaseError

from shared.config import Settings
from shared.db import (
    READ_TIMEOUT_MARGIN_SECONDS,
    Database,
    DatabaseUnavailable,
    Prepared,
    _statement,
    parse_database_url,
    read_timeout,
)


@pytest.fixture
def db():
    database = Database(replace(Settings.from_env(), db_pool_size=8, db_pool_timeout_seconds=10))
    yield database
    database.close()


def test_pool_serves_sixteen_threads_at_once_without_errors_or_leaks(db):
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def work():
        barrier.wait()
        try:
            for _ in range(20):
                with db.transaction() as tx:
                    assert tx.scalar("SELECT pg_backend_pid()") > 0
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.open_connections <= 8
    assert db.idle_connections == db.open_connections  # every connection came back
    in_use = db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bestie' AND state <> 'idle'")
    assert in_use == 1  # only the connection running this query


def test_transaction_rolls_back_unless_committed(db):
    phone = f"+62812{uuid.uuid4().int % 10**8:08d}"
    with db.transaction() as tx:
        tx.execute("INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'x')", p=phone)
    assert db.scalar("SELECT count(*) FROM mitras WHERE phone_e164 = :p", p=phone) == 0
    with db.transaction() as tx:
        tx.execute("INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'x')", p=phone)
        tx.commit()
    assert db.scalar("SELECT count(*) FROM mitras WHERE phone_e164 = :p", p=phone) == 1


def test_exception_in_block_rolls_back_and_connection_is_reused(db):
    phone = f"+62813{uuid.uuid4().int % 10**8:08d}"
    with pytest.raises(ZeroDivisionError), db.transaction() as tx:
        tx.execute("INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'x')", p=phone)
        _ = 1 / 0
    assert db.scalar("SELECT count(*) FROM mitras WHERE phone_e164 = :p", p=phone) == 0
    assert db.open_connections == 1


def test_pool_replaces_connections_the_server_killed(db):
    pids = []
    for _ in range(3):
        with db.transaction() as tx:
            pids.append(tx.scalar("SELECT pg_backend_pid()"))
    with Database(Settings.from_env()).transaction() as other:
        other.scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(:p)", p=pids)
    assert db.scalar("SELECT 1") == 1


def test_unreachable_database_is_a_503_error_not_a_crash():
    from infra.embedded import free_port

    dead = Database(replace(Settings.from_env(), database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x"))
    with pytest.raises(DatabaseUnavailable) as err:
        dead.scalar("SELECT 1")
    assert err.value.status == 503


def test_cloud_sql_connector_failure_is_a_503_not_a_cold_start_crash(monkeypatch):
    # No Google credentials here: the Connector's credential lookup fails like a misconfigured
    # service account would. Building the pool must not fail; using it is a clear 503.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/credentials.json")
    settings = Settings.from_env(
        {
            "CLOUD_SQL_INSTANCE": "proj:asia-southeast2:main",
            "DB_USER": "svc@proj.iam",
            "DB_NAME": "bestie",
            "DB_IAM_AUTH": "1",
            "VALKEY_URL": "redis://unused",
        }
    )
    db = Database(settings)
    with pytest.raises(DatabaseUnavailable) as err:
        db.scalar("SELECT 1")
    assert err.value.status == 503
    assert db.open_connections == 0


# ---- failures Postgres did not report itself never put a connection back out of step --------


@pytest.fixture
def small_db():
    database = Database(replace(Settings.from_env(), db_pool_size=2, db_pool_timeout_seconds=1))
    yield database
    database.close()


def _assert_pool_whole_and_in_step(db: Database, size: int = 2) -> None:
    """Every slot can be taken at once, and every connection answers its own query."""
    with contextlib.ExitStack() as stack:
        txs = [stack.enter_context(db.transaction()) for _ in range(size)]
        for round_ in range(3):
            for i, tx in enumerate(txs):
                n = round_ * 10 + i
                assert tx.scalar("SELECT CAST(:n AS int) + 1", n=n) == n + 1
    for n in range(20):
        assert db.scalar("SELECT CAST(:s AS text)", s=f"value-{n}") == f"value-{n}"
    assert db.in_use == 0
    assert db.idle_connections == db.open_connections <= size


def _unencodable(tx):
    tx.scalar("SELECT CAST(:v AS text)", v="\udc00@x.com")


def _unadaptable(tx):
    tx.scalar("SELECT CAST(:v AS jsonb)", v={"k": object()})  # json.dumps fails after DESCRIBE/SYNC


def _reply_conversion_fails(tx):
    # An in-adapter that fails on the first DataRow leaves CommandComplete and ReadyForQuery unread.
    tx._conn.register_in_adapter(790, _boom)  # money
    tx.rows("SELECT CAST(g AS money) FROM generate_series(1, 3) AS g")


def _boom(_text):
    raise ValueError("cannot convert")


@pytest.mark.parametrize("fail", [_unencodable, _unadaptable, _reply_conversion_fails])
def test_client_side_statement_failure_discards_the_connection_and_leaves_the_pool_whole(small_db, fail):
    for _ in range(10):
        with pytest.raises(Exception) as err, small_db.transaction() as tx:
            fail(tx)
        assert not isinstance(err.value, DatabaseError)  # not something Postgres reported
        assert small_db.in_use == 0
    assert small_db.open_connections == 0  # each one was closed, none went back to the pool
    _assert_pool_whole_and_in_step(small_db)


def test_a_caught_client_side_failure_cannot_be_followed_by_another_statement(small_db):
    with pytest.raises(DatabaseUnavailable), small_db.transaction() as tx:
        with contextlib.suppress(UnicodeEncodeError):
            _unencodable(tx)
        tx.scalar("SELECT 1")
    _assert_pool_whole_and_in_step(small_db)


def test_an_error_postgres_reports_keeps_the_connection_in_the_pool(small_db):
    with pytest.raises(DatabaseError), small_db.transaction() as tx:
        tx.scalar("SELECT 1 / 0")
    with pytest.raises(DatabaseError), small_db.transaction() as tx:
        tx.scalar("SELECT CAST(:n AS bigint)", n=10**30)
    assert small_db.open_connections == 1 and small_db.idle_connections == 1
    _assert_pool_whole_and_in_step(small_db)


def test_pooled_connection_out_of_step_on_begin_is_discarded_and_replaced(small_db):
    assert small_db.scalar("SELECT 1") == 1
    stale = small_db._idle.queue[0]
    stale.send_QUERY("SELECT 1 / 0")  # a reply nobody reads: the next BEGIN sees it first
    pg8000_core._flush(stale._sock)
    assert small_db.scalar("SELECT 41 + 1") == 42
    assert small_db.in_use == 0
    _assert_pool_whole_and_in_step(small_db)


def test_socket_dropped_inside_a_transaction_is_a_503_and_the_slot_comes_back(small_db):
    with pytest.raises(DatabaseUnavailable), small_db.transaction() as tx:
        pid = tx.scalar("SELECT pg_backend_pid()")
        with Database(Settings.from_env()).transaction() as other:
            other.scalar("SELECT pg_terminate_backend(:p)", p=pid)
        tx.scalar("SELECT 1")
    assert small_db.in_use == 0 and small_db.open_connections == 0
    _assert_pool_whole_and_in_step(small_db)


class Interrupted(BaseException):
    """Like a worker timeout or KeyboardInterrupt arriving while a reply is being read."""


def test_interrupt_while_reading_a_reply_discards_the_connection(small_db):
    calls = {"n": 0}

    def interrupted(data, context):
        calls["n"] += 1
        raise Interrupted

    with pytest.raises(Interrupted), small_db.transaction() as tx:
        tx._conn.message_types[pg8000_core.DATA_ROW] = interrupted
        tx.rows("SELECT g FROM generate_series(1, 3) AS g")
    assert calls["n"] == 1
    assert small_db.in_use == 0 and small_db.open_connections == 0
    _assert_pool_whole_and_in_step(small_db)


def test_failure_while_opening_a_connection_closes_it_and_frees_the_slot():
    opened = []

    def connect():
        conn = Database(Settings.from_env())._connect()
        opened.append(conn)
        return conn

    settings = replace(Settings.from_env(), db_pool_size=1, db_pool_timeout_seconds=1, db_statement_timeout_ms=-5)
    db = Database(settings, connect=connect)
    with pytest.raises(DatabaseError):  # Postgres refuses the negative timeout
        db.scalar("SELECT 1")
    assert opened and opened[0]._sock is None  # closed, not leaked
    assert db.in_use == 0 and db.open_connections == 0
    db.close()


def test_pooled_connections_send_without_nagle_delay(db):
    """A large parameter must not wait for the server's delayed ACK (about 40 ms per statement)."""
    with db.transaction() as tx:
        sock = tx._conn._usock
        assert sock.family in (socket.AF_INET, socket.AF_INET6)  # the embedded server listens on TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        ids = ",".join(str(uuid.uuid4()) for _ in range(5000))  # 185 KB: many segments
        assert tx.scalar("SELECT cardinality(string_to_array(:ids, ','))", ids=ids) == 5000


# ---- one round trip per statement; prepared statements ---------------------------------------


def _round_trips(tx, call) -> int:
    """How many times the connection waited for the server's replies while `call` ran."""
    conn, count = tx._conn, [0]
    original = conn.handle_messages

    def counting(context):
        count[0] += 1
        return original(context)

    conn.handle_messages = counting
    try:
        call()
    finally:
        del conn.handle_messages
    return count[0]


def test_a_statement_with_parameters_and_rows_is_one_round_trip(db):
    with db.transaction() as tx:
        rows: list = []
        trips = _round_trips(
            tx, lambda: rows.extend(tx.rows("SELECT g, CAST(:s AS text) AS s FROM generate_series(1, 3) AS g", s="x"))
        )
        assert rows == [{"g": 1, "s": "x"}, {"g": 2, "s": "x"}, {"g": 3, "s": "x"}]
        assert trips == 1
        assert _round_trips(tx, lambda: tx.execute("SELECT 1 WHERE false")) == 1


def test_a_prepared_statement_is_parsed_once_per_connection_and_survives_failed_runs(small_db):
    insert = Prepared("INSERT INTO mitras (phone_e164, display_name) VALUES (:p, :n) RETURNING display_name")
    phone = f"+62813{uuid.uuid4().int % 10**8:08d}"
    with small_db.transaction() as tx:
        assert tx.scalar(insert, p=phone, n="first") == "first"
        tx.commit()
    for _ in range(3):  # the same text fails on its unique index: Postgres reports it, the pool keeps the connection
        with pytest.raises(DatabaseError), small_db.transaction() as tx:
            tx.scalar(insert, p=phone, n="again")
    assert small_db.open_connections == 1
    with small_db.transaction() as tx:
        other = f"+62813{uuid.uuid4().int % 10**8:08d}"
        assert tx.scalar(insert, p=other, n="second") == "second"
        prepared = tx.scalar(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = :s", s=_statement(insert)[0]
        )
        assert prepared == 1  # parsed again after each failed run, under the same name: never twice
    with pytest.raises(DatabaseError), small_db.transaction() as tx:
        tx.scalar(Prepared("SELEC 1"))  # fails to parse: nothing is remembered
    with small_db.transaction() as tx:
        assert tx.scalar(Prepared("SELECT CAST(:n AS int) * 2"), n=21) == 42
        assert _round_trips(tx, lambda: tx.scalar(Prepared("SELECT CAST(:n AS int) * 2"), n=5)) == 1
    _assert_pool_whole_and_in_step(small_db)


# ---- read timeouts: the server cancels a slow statement first --------------------------------


def _given_a_socket(settings: Settings):
    """Connect as the Cloud SQL connector does: it opens the socket itself (no timeout on it)
    and hands it to pg8000, which sets none on a socket it is given."""
    params = parse_database_url(settings.database_url or "")

    def connect():
        sock = socket.create_connection((params.host, params.port))
        return pg8000_core.CoreConnection(params.user, password=params.password, database=params.database, sock=sock)

    return connect


@pytest.mark.parametrize("path", ["database_url", "socket_given"])
def test_a_pooled_connection_reads_with_a_timeout_just_past_its_statement_timeout(path):
    settings = replace(Settings.from_env(), db_pool_size=2, db_statement_timeout_ms=15000)
    database = Database(settings, connect=_given_a_socket(settings) if path == "socket_given" else None)
    try:
        with database.transaction() as tx:
            assert tx.scalar("SHOW statement_timeout") == "15s"
            assert tx._conn._usock.gettimeout() == 15 + READ_TIMEOUT_MARGIN_SECONDS
    finally:
        database.close()


def test_a_slow_statement_is_cancelled_by_postgres_and_its_connection_kept():
    database = Database(replace(Settings.from_env(), db_pool_size=1, db_statement_timeout_ms=300))
    try:
        with pytest.raises(DatabaseError) as raised, database.transaction() as tx:
            tx.scalar("SELECT pg_sleep(2)")
        assert raised.value.args[0]["C"] == "57014"  # query_canceled: the server's timeout, not the socket's
        assert database.open_connections == 1
        assert database.scalar("SELECT 1") == 1
    finally:
        database.close()


def test_a_longer_statement_timeout_lengthens_the_read_timeout_until_the_connection_returns(db):
    with db.transaction() as tx:
        conn = tx._conn
        tx.set_statement_timeout(600_000, local=True)  # a migration's
        assert tx.scalar("SHOW statement_timeout") == "10min"
        assert conn._usock.gettimeout() == 600 + READ_TIMEOUT_MARGIN_SECONDS
    assert conn._usock.gettimeout() == read_timeout(db._settings.db_statement_timeout_ms)


def test_dates_and_times_read_as_pg8000_reads_them_including_what_iso_parsing_refuses(db):
    from pg8000 import converters

    values = [
        ("timestamptz", "2026-12-03 13:45:05.123456+00", converters.timestamptz_in),
        ("timestamptz", "2026-12-03 13:45:05+00", converters.timestamptz_in),
        ("timestamptz", "2026-12-03 13:45:05.1+00", converters.timestamptz_in),
        ("timestamptz", "infinity", converters.timestamptz_in),
        ("timestamptz", "-infinity", converters.timestamptz_in),
        ("timestamp", "2026-12-03 13:45:05.5", converters.timestamp_in),
        ("timestamp", "infinity", converters.timestamp_in),
        ("date", "2026-12-03", converters.date_in),
        ("date", "0044-03-15 BC", converters.date_in),
        ("date", "infinity", converters.date_in),
    ]
    with db.transaction() as tx:
        tx.script("SET LOCAL TimeZone = 'Asia/Kolkata'")  # a half-hour offset: +05:30
        for kind, literal, pg8000_reads in values:
            text = tx.scalar(f"SELECT CAST(CAST(:v AS {kind}) AS text)", v=literal)  # a type name, not input
            read = tx.scalar(f"SELECT CAST(:v AS {kind})", v=literal)  # a type name, not input
            assert read == pg8000_reads(text), (kind, literal, text)
            assert type(read) is type(pg8000_reads(text))
        aware = tx.scalar("SELECT CAST('2026-12-03 08:15:05.25+00' AS timestamptz)")
        assert aware.isoformat() == "2026-12-03T13:45:05.250000+05:30"
