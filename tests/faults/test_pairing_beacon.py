"""The availability beacon: no Postgres statement while Valkey is up, still an answer when it is down."""

from __future__ import annotations

import dataclasses
from typing import Any

from infra.embedded import EmbeddedValkey
from shared import context
from shared.availability import access
from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.helpers import FakeClock
from tests.support.pairing_support import customer, online_mitras
from tests.support.server_counters import PostgresCounter


def _beacon(auth: dict[str, str]) -> Any:
    return client("pairing_availability").get("/api/client/availability", headers=auth)


def test_beacon_makes_no_postgres_statement_while_valkey_is_up(isolated_ctx: AppContext, monkeypatch: Any) -> None:
    ctx = isolated_ctx
    # Between two of the instance's once-a-second checks for missed access marks (the check
    # itself is counted in tests/functions/test_heartbeat_cost.py).
    monkeypatch.setattr(access, "CHECK_SECONDS", 3600.0)
    online_mitras(ctx, 3)
    _, auth = customer(ctx)
    assert _beacon(auth).status_code == 200  # warm: an instance's first access decision repairs from Postgres
    counter = PostgresCounter(ctx)
    try:
        before = counter.settle()
        answers = [_beacon(auth) for _ in range(20)]
        after = counter.settle()
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
