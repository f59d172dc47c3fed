"""The isolated-database fixture really isolates (other tests rely on it for global counts).

Each test process reuses its clones of the migrated template (tests/support/databases.py): these tests
show that what one holder wrote, rows, app_config changes, sequence positions and schema, is
gone when the next holder gets the database.
"""

import uuid

import pytest

from shared import app_config
from tests.support.databases import connect

# Two tests in a row on one worker: the second gets the first one's database back.
in_a_row = pytest.mark.xdist_group("isolated-db-in-a-row")
_handed_out: dict[str, str] = {}


def test_isolated_database_starts_empty_and_migrated(isolated_ctx, ctx):
    phone = f"+62812{uuid.uuid4().int % 10**8:08d}"
    with ctx.db.transaction() as tx:
        tx.execute("INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'elsewhere')", p=phone)
        tx.commit()
    assert isolated_ctx.db.scalar("SELECT count(*) FROM mitras") == 0
    assert isolated_ctx.db.scalar("SELECT count(*) FROM app_config") == len(app_config.DEFAULTS)


def _state(url: str) -> dict[str, object]:
    """What a test could leave behind: rows, app_config, where the sequences stand, the tables."""
    conn = connect(url)
    try:
        return {
            "mitras": conn.run("SELECT count(*) FROM mitras")[0][0],
            "status_logs": conn.run("SELECT count(*) FROM mitra_status_logs")[0][0],
            "app_config": conn.run("SELECT key, value::text, updated_at FROM app_config ORDER BY key"),
            "sequences": conn.run("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1"),
            "tables": conn.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
        }
    finally:
        conn.close()


def _dirty(url: str) -> None:
    conn = connect(url)
    try:
        mitra = conn.run("INSERT INTO mitras (phone_e164, display_name) VALUES ('+6281200000001', 'x') RETURNING id")
        conn.run("INSERT INTO mitra_status_logs (mitra_id, event, actor) VALUES (:m, 'online', 'test')", m=mitra[0][0])
        conn.run("UPDATE app_config SET value = '9', updated_at = now() WHERE key = 'cc_max_failed_logins'")
        conn.run("DELETE FROM app_config WHERE key = 'otp_ttl_seconds'")
    finally:
        conn.close()


def test_a_database_handed_out_again_is_as_a_fresh_clone_would_be(isolated_databases):
    with isolated_databases.database() as url:
        fresh = _state(url)
        _dirty(url)
        assert _state(url) != fresh
    with isolated_databases.database() as again:
        assert again == url  # the same database, reset in place rather than cloned again
        assert _state(again) == fresh


def test_a_database_whose_schema_a_test_changed_is_replaced_by_a_new_clone(isolated_databases):
    with isolated_databases.database() as url:
        fresh = _state(url)
        conn = connect(url)
        try:
            conn.run("CREATE TABLE left_behind (n integer)")
            conn.run("ALTER TABLE mitras ADD COLUMN extra integer")
        finally:
            conn.close()
    with isolated_databases.database() as other:
        assert other != url
        assert _state(other) == fresh


@in_a_row
def test_one_test_writes_a_row_and_changes_app_config(isolated_ctx):
    _handed_out["database"] = isolated_ctx.settings.database_url
    app_config.put(isolated_ctx, "cc_max_failed_logins", 9, "test")
    with isolated_ctx.db.transaction() as tx:
        tx.execute("INSERT INTO mitras (phone_e164, display_name) VALUES ('+6281200000002', 'left behind')")
        tx.commit()


@in_a_row
def test_the_next_test_on_that_database_sees_neither(isolated_ctx):
    assert isolated_ctx.settings.database_url == _handed_out["database"]  # the previous test's database
    assert isolated_ctx.db.scalar("SELECT count(*) FROM mitras") == 0
    assert app_config.get_all(isolated_ctx) == app_config.DEFAULTS
    assert isolated_ctx.db.scalar("SELECT count(*) FROM app_config") == len(app_config.DEFAULTS)
