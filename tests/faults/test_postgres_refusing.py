"""Postgres up but refusing connections is unavailability: 503 DATABASE_UNAVAILABLE with a
Retry-After, never a 500.

A real server refuses in each case: one in a smart shutdown (it keeps the sessions it has and
answers every new connection with SQLSTATE 57P03, "the database system is shutting down", as
during a restart), after terminating the instance's pooled connection (57P01, as a restart
does); and a role over its connection limit (53300, "too many connections").
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pg8000.native
import pytest

from infra import migrate
from infra.embedded import EmbeddedPostgres
from shared.context import AppContext
from shared.db import Database, parse_database_url
from tests.support.helpers import installed


def _assert_unavailable(resp) -> None:
    assert resp.status_code == 503, resp.json
    assert resp.json["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert int(resp.headers["Retry-After"]) >= 1


@pytest.fixture
def own_postgres(tmp_path, isolated_ctx: AppContext) -> Iterator[EmbeddedPostgres]:
    """A migrated Postgres of this test's own, which the test may shut down."""
    server = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        db = Database(replace(isolated_ctx.settings, database_url=server.url))
        migrate.migrate(db)
        db.close()
        yield server
    finally:
        server.stop()


def _raw(url: str) -> pg8000.native.Connection:
    p = parse_database_url(url)
    return pg8000.native.Connection(p.user, host=p.host or "127.0.0.1", port=p.port, database=p.database)


def test_a_postgres_shutting_down_answers_503_with_retry_after(call, own_postgres, isolated_ctx):
    settings = replace(isolated_ctx.settings, database_url=own_postgres.url)
    with installed(AppContext(settings, clock=isolated_ctx.clock)) as app_ctx:
        assert call("auth_anonymous").post("/api/shared/auth/anonymous").status_code == 201
        assert app_ctx.db.idle_connections >= 1
        held = _raw(own_postgres.url)  # keeps the smart shutdown from finishing
        try:
            assert own_postgres.proc is not None
            own_postgres.proc.send_signal(signal.SIGTERM)  # smart shutdown: no new connections
            with pytest.raises(pg8000.native.DatabaseError) as refused:
                _raw(own_postgres.url)
            assert refused.value.args[0]["C"] == "57P03"
            # The pooled connection is terminated (57P01), its replacement refused (57P03).
            terminated = held.run(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            )
            assert terminated[0][0] >= 1
            _assert_unavailable(call("auth_anonymous").post("/api/shared/auth/anonymous"))
            _assert_unavailable(call("auth_anonymous").post("/api/shared/auth/anonymous"))
        finally:
            held.close()


def test_too_many_connections_answers_503_with_retry_after(call, isolated_ctx):
    role = f"refused_{uuid.uuid4().hex[:8]}"
    admin = _raw(isolated_ctx.settings.database_url or "")
    admin.run(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")  # a generated name, not input
    try:
        url = isolated_ctx.settings.database_url or ""
        p = parse_database_url(url)
        limited = f"postgresql://{role}@{p.host}:{p.port}/{p.database}"
        with pytest.raises(pg8000.native.DatabaseError) as refused:
            _raw(limited)
        assert refused.value.args[0]["C"] == "53300"
        with installed(AppContext(replace(isolated_ctx.settings, database_url=limited), clock=isolated_ctx.clock)):
            _assert_unavailable(call("auth_anonymous").post("/api/shared/auth/anonymous"))
    finally:
        admin.run(f"DROP ROLE IF EXISTS {role}")
        admin.close()
