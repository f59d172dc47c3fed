"""The heartbeat hot path costs 0 Postgres statements and exactly 1 Valkey round trip,
counted on the servers (pg_stat_database, INFO stats), not by wrapping the clients; once a
second per instance, the check for missed access marks adds one statement and one GET."""

from __future__ import annotations

import math
from typing import Any

import redis

from infra.embedded import EmbeddedValkey
from shared import availability
from shared.availability import access
from shared.context import AppContext
from tests.support import apps
from tests.support.mirror_state import new_mitra
from tests.support.server_counters import PostgresCounter, ValkeyCounter
from tests.support.tokens import bearer, mitra_token

HEARTBEATS = 20


def test_heartbeat_makes_no_postgres_statement_and_one_valkey_round_trip(
    isolated_ctx: AppContext, own_valkey: EmbeddedValkey, monkeypatch: Any
) -> None:
    ctx = apps.with_valkey(isolated_ctx, own_valkey.url)
    monkeypatch.setattr(access, "CHECK_SECONDS", 3600.0)  # steady state: between two checks
    mitra = new_mitra(ctx)
    token, _ = mitra_token(ctx, mitra)
    availability.ensure_seeded(ctx)
    availability.set_online(ctx, mitra, "test")
    client = apps.client("mitra_status_heartbeat")
    assert client.post("/api/mitra/status/heartbeat", headers=bearer(token)).status_code == 200  # warm: script loaded

    pg = PostgresCounter(ctx)
    observer = ValkeyCounter(redis.Redis.from_url(own_valkey.url, decode_responses=True))
    try:
        xacts_before = pg.settle()
        reads_before, evalsha_before = observer.reads(), observer.evalsha_calls()
        for _ in range(HEARTBEATS):
            resp = client.post("/api/mitra/status/heartbeat", headers=bearer(token))
            assert resp.status_code == 200 and resp.json["online"] is True
        # Two INFO calls of the observer happened in between (evalsha_calls and this reads()).
        round_trips = observer.reads() - reads_before - 2
        evalsha = observer.evalsha_calls() - evalsha_before
        xacts_after = pg.settle()
        assert xacts_after == xacts_before
        assert round_trips == HEARTBEATS and evalsha == HEARTBEATS

        # The check is due: this one heartbeat also reads the miss count (Postgres) and the
        # mirror's repaired count (one GET) besides its script.
        access._trust(ctx).checked_at = -math.inf
        reads_before = observer.reads()
        assert client.post("/api/mitra/status/heartbeat", headers=bearer(token)).status_code == 200
        assert observer.reads() - reads_before - 1 == 2
        assert pg.settle() > xacts_after  # Postgres was read (on a new connection: settle closed the pool)
        xacts_after = pg.settle()

        # The counter does see Postgres work: with Valkey down the same call uses Postgres.
        own_valkey.stop()
        resp = client.post("/api/mitra/status/heartbeat", headers=bearer(token))
        assert resp.status_code == 200
        assert pg.settle() > xacts_after
    finally:
        pg.close()
