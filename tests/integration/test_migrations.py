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


@pytest.fixture
def holder(empty_db):
    """Another connection whose open transaction read app_config (ACCESS SHARE held until ROLLBACK)."""
    migrate.migrate(empty_db)
    with empty_db.dedicated() as conn:
        conn.script("BEGIN")
        conn.rows("SELECT key FROM app_config LIMIT 1")
        yield conn


def test_a_migration_that_cannot_get_its_lock_gives_up_and_is_retried_not_left_waiting(empty_db, holder):
    blocked = migrate.Migration("9001_blocked", "ALTER TABLE app_config ADD COLUMN note text;")
    pauses = []
    limits = migrate.Limits(lock_timeout_ms=100, attempts=3, pause_seconds=0.01)
    try:
        with pytest.raises(Exception) as refused:
            migrate.migrate(empty_db, [*migrate.discover(), blocked], limits, sleep=pauses.append)
    finally:
        holder.script("ROLLBACK")
    assert migrate.sqlstate(refused.value) == migrate.LOCK_NOT_AVAILABLE
    assert len(pauses) == 2  # three attempts, a pause between each
    assert empty_db.scalar("SELECT count(*) FROM schema_migrations WHERE version = '9001_blocked'") == 0
    assert migrate.migrate(empty_db, [*migrate.discover(), blocked], limits) == ["9001_blocked"]


def test_a_lock_released_during_the_pause_lets_the_retry_apply_the_migration(empty_db, holder):
    blocked = migrate.Migration("9001_blocked", "ALTER TABLE app_config ADD COLUMN note text;")
    limits = migrate.Limits(lock_timeout_ms=100, attempts=3, pause_seconds=0.01)
    applied = migrate.migrate(
        empty_db, [*migrate.discover(), blocked], limits, sleep=lambda _: holder.script("ROLLBACK")
    )
    assert applied == ["9001_blocked"]


def test_each_migration_commits_on_its_own_so_a_failing_file_keeps_the_ones_before_it(empty_db):
    migrate.migrate(empty_db)
    first = migrate.Migration("9001_first", "CREATE TABLE first_table (id int PRIMARY KEY);")
    broken = migrate.Migration("9002_broken", "CREATE TABLE second_table (id int PRIMARY KEY;")
    with pytest.raises(Exception, match="syntax"):
        migrate.migrate(empty_db, [*migrate.discover(), first, broken])
    versions = {r["version"] for r in empty_db.rows("SELECT version FROM schema_migrations")}
    assert "9001_first" in versions and "9002_broken" not in versions
    assert empty_db.scalar("SELECT to_regclass('first_table') IS NOT NULL") is True


def test_a_no_transaction_migration_builds_an_index_concurrently(empty_db):
    migrate.migrate(empty_db)
    build = "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON app_config (value);"
    first_line = migrate.NO_TRANSACTION
    concurrent = migrate.Migration("9001_concurrent", f"{first_line}\n{build.format(name='app_config_value_idx')}")
    in_a_transaction = migrate.Migration("9002_in_tx", build.format(name="app_config_v2_idx"))
    assert not concurrent.transactional and in_a_transaction.transactional
    assert migrate.migrate(empty_db, [*migrate.discover(), concurrent]) == ["9001_concurrent"]
    valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'app_config_value_idx'::regclass"
    assert empty_db.scalar(valid) is True
    with pytest.raises(Exception, match="transaction block"):  # why the opt-out exists
        migrate.migrate(empty_db, [*migrate.discover(), concurrent, in_a_transaction])


def _without_comments(sql: str) -> list[str]:
    return [line for line in sql.splitlines() if line.strip() and not line.strip().startswith("--")]


def test_a_database_migrated_before_a_comment_only_edit_accepts_the_edited_file(empty_db):
    superseded = migrate.load_superseded()
    assert superseded, "no superseded checksum to test"
    migrate.migrate(empty_db)
    with empty_db.transaction() as tx:  # as a database migrated before the edit recorded them
        for version, checksums in superseded.items():
            tx.execute("UPDATE schema_migrations SET checksum = :c WHERE version = :v", c=checksums[0], v=version)
        tx.commit()
    assert migrate.migrate(empty_db) == []
    recorded = {r["version"]: r["checksum"] for r in empty_db.rows("SELECT version, checksum FROM schema_migrations")}
    assert recorded == {m.version: m.checksum for m in migrate.discover()}  # the new texts are recorded


def test_every_superseded_checksum_is_a_past_text_of_the_file_with_the_same_sql():
    import hashlib
    import subprocess

    repo = migrate.MIGRATIONS_DIR.parent
    current = {m.version: m.sql for m in migrate.discover()}
    for version, checksums in migrate.load_superseded().items():
        path = f"migrations/{version}.sql"
        commits = subprocess.run(
            ["git", "-C", str(repo), "log", "--format=%H", "--", path], capture_output=True, text=True, check=True
        ).stdout.split()
        texts = {}
        for commit in commits:
            text = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, text=True)
            if text.returncode == 0:
                texts[hashlib.sha256(text.stdout.encode()).hexdigest()] = text.stdout
        for checksum in checksums:
            assert checksum in texts, f"{version}: {checksum[:12]} is no past text of the file"
            assert _without_comments(texts[checksum]) == _without_comments(current[version]), version
