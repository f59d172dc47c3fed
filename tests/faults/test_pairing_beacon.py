"""The availability beacon: no Postgres statement while Valkey is up, still an answer when it is down."""

from __future__ import annotations

import dataclasses
from typing import Any

import pg8000.native

from infra.embedded import EmbeddedValkey
from shared import context
from shared.context import AppContext
from shared.db import parse_database_url
from tests.auth_support import client, wait_until
from tests.helpers import FakeClock
from tests.pairing_support import customer, online_mitras


def _beacon(auth: dict[str, str]) -> Any:
    return client("pairing_availability").get("/api/client/availability", headers=auth)


class _ServerCounter:
    """Transactions Postgres itself counted for one database (pg_stat_database), read from outside it."""

    def __init__(self, ctx: AppContext) -> None:
        assert ctx.settings.database_url
        self.ctx = ctx
        params = parse_database_url(ctx.settings.database_url)
        self.database = params.database
        self.conn = pg8000.native.Connection(
            params.user,
            host=params.host or "localhost",
            port=params.port,
            database="postgres",
            password=params.password,
            unix_sock=params.unix_sock,
        )

    def _backends(self) -> int:
        return int(self.conn.run("SELECT count(*) FROM pg_stat_activity WHERE datname = :d", d=self.database)[0][0])

    def transactions(self) -> int:
        """Close the app's idle connections (their backends flush their statistics as they exit), then read."""
        self.ctx.db.close_idle()
        assert wait_until(lambda: self._backends() == 0, timeout=10)
        self.conn.run("SELECT pg_stat_clear_snapshot()")
        row = self.conn.run(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d", d=self.database
        )
        return int(row[0][0])

    def close(self) -> None:
        self.conn.close()


def test_beacon_makes_no_postgres_statement_while_valkey_is_up(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    online_mitras(ctx, 3)
    _, auth = customer(ctx)
    counter = _ServerCounter(ctx)
    try:
        before = counter.transactions()
        answers = [_beacon(auth) for _ in range(20)]
        after = counter.transactions()
    finally:
        counter.close()

    assert [a.status_code for a in answers] == [200] * 20
    assert {a.json["available"] for a in answers} == {3}
    assert after == before  # not one transaction in this test's own database
    assert ctx.db.open_connections == 0


def test_beacon_answers_from_postgres_with_valkey_stopped(
    isolated_ctx: AppContext, clock: FakeClock, own_valkey: EmbeddedValkey
) -> None:
    ctx = AppContext(dataclasses.replace(isolated_ctx.settings, valkey_url=own_valkey.url), clock=clock)
    context.install(ctx)
    try:
        online_mitras(ctx, 2)
        _, auth = customer(ctx)
        up = _beacon(auth)
        own_valkey.stop()
        down = _beacon(auth)
    finally:
        context.install(isolated_ctx)
        ctx.close()

    assert up.status_code == down.status_code == 200
    assert up.json["available"] == down.json["available"] == 2
    assert down.json["as_of"] == clock().isoformat()
