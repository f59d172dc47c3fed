"""The pg8000 pool against a real Postgres: concurrency, rollback, recovery."""

import threading
import uuid
from dataclasses import replace

import pytest

from shared.config import Settings
from shared.db import Database, DatabaseUnavailable


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
