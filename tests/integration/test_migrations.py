"""Migrations against a real Postgres: fresh apply, re-run no-op, concurrent runners."""

import threading
import uuid
from dataclasses import replace

import pg8000.native
import pytest

from infra import migrate
from shared import app_config
from shared.config import Settings
from shared.db import Database, parse_database_url


@pytest.fixture
def empty_db(test_env):
    """A brand-new database on the test server, dropped afterwards."""
    name = f"mig_{uuid.uuid4().hex[:10]}"
    p = parse_database_url(test_env["DATABASE_URL"])
    admin = pg8000.native.Connection(p.user, host=p.host, port=p.port, database="postgres", password=p.password)
    admin.run(f"CREATE DATABASE {name}")
    url = test_env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    db = Database(replace(Settings.from_env(), database_url=url, db_pool_size=4))
    try:
        yield db
    finally:
        db.close()
        admin.run(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def test_migrations_apply_to_an_empty_database_and_a_second_run_is_a_no_op(empty_db):
    applied = migrate.migrate(empty_db)
    assert applied == [m.version for m in migrate.discover()]
    tables = {r["tablename"] for r in empty_db.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {
        "customers",
        "mitras",
        "mitra_status_logs",
        "devices",
        "control_center_users",
        "auth_sessions",
        "refresh_tokens",
        "otp_requests",
        "app_config",
        "chat_sessions",
        "pairing_offers",
        "chat_session_events",
        "schema_migrations",
    } <= tables
    assert migrate.migrate(empty_db) == []
    assert empty_db.scalar("SELECT count(*) FROM schema_migrations") == len(applied)


def test_app_config_defaults_are_seeded(empty_db):
    migrate.migrate(empty_db)
    config = {r["key"]: r["value"] for r in empty_db.rows("SELECT key, value FROM app_config")}
    assert config["otp_ttl_seconds"] == 300
    assert config["mitra_max_concurrent_sessions"] == 1
    assert config["cc_lockout_minutes"] == 15
    assert config["mitra_sees_customer_name"] == 0  # anonymous towards mitras unless staff turn it on
    assert config == app_config.DEFAULTS  # every key the code knows, with the value it falls back to


def test_two_concurrent_runners_do_not_collide(empty_db):
    results, errors = [], []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        try:
            results.append(migrate.migrate(empty_db))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, len(migrate.discover())]
    assert empty_db.scalar("SELECT count(*) FROM schema_migrations") == len(migrate.discover())


def test_a_changed_applied_migration_is_refused(empty_db):
    migrate.migrate(empty_db)
    tampered = [migrate.Migration(m.version, m.sql + "\n-- edited") for m in migrate.discover()]
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate.migrate(empty_db, tampered)
