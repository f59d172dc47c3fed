"""No transition holds a session row lock while it picks mitras: the pick may call Valkey,
fall back to Postgres on another connection, or run a full reseed, and a row lock held
across that would stall every other request on the session (and the expiry sweep)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pg8000.exceptions import DatabaseError

from shared import availability
from shared.context import AppContext
from tests.support.pairing_support import api, customer, events, online_mitras

LOCK_NOT_AVAILABLE = "55P03"


def _row_locked(ctx: AppContext, session_id: str) -> bool:
    """Whether another transaction holds the session row (probed from a connection of our own)."""
    try:
        with ctx.db.transaction() as tx:
            tx.one("SELECT id FROM chat_sessions WHERE id = CAST(:s AS uuid) FOR UPDATE NOWAIT", s=session_id)
    except DatabaseError as exc:
        if LOCK_NOT_AVAILABLE in str(exc):
            return True
        raise
    return False


def test_the_last_decline_picks_new_mitras_without_holding_the_session_lock(
    isolated_ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, pairing_blast_size=1)
    mitras = online_mitras(ctx, 2)
    auth_of = dict(mitras)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    (first,) = [
        str(r["mitra_id"])
        for r in ctx.db.rows("SELECT mitra_id FROM pairing_offers WHERE session_id = CAST(:s AS uuid)", s=sid)
    ]

    locked_during_pick: list[bool] = []
    real = availability.find_available_mitras

    def probe(ctx: AppContext, limit: int, exclude: Any = ()) -> list[str]:
        locked_during_pick.append(_row_locked(ctx, sid))
        return real(ctx, limit, exclude)

    monkeypatch.setattr(availability, "find_available_mitras", probe)
    resp = api("decline", auth_of[first], sid)

    assert resp.status_code == 200 and resp.json["status"] == "searching"
    assert locked_during_pick == [False]
    assert api("get", auth, sid).json["offered_count"] == 2
    assert events(ctx, sid) == ["requested", "offered", "declined", "offered"]


def test_the_last_decline_with_nobody_left_expires_the_session_without_holding_the_lock_while_picking(
    isolated_ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = isolated_ctx
    ((_, mitra_auth),) = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]

    locked_during_pick: list[bool] = []
    real = availability.find_available_mitras

    def probe(ctx: AppContext, limit: int, exclude: Any = ()) -> list[str]:
        locked_during_pick.append(_row_locked(ctx, sid))
        return real(ctx, limit, exclude)

    monkeypatch.setattr(availability, "find_available_mitras", probe)
    ctx.valkey.delete(ctx.keys.seeded)  # the pick falls back to Postgres (another connection) and seeds
    resp = api("decline", mitra_auth, sid)

    assert resp.status_code == 200 and resp.json["status"] == "expired"
    assert locked_during_pick == [False]
    session = api("get", auth, sid).json
    assert (session["status"], session["end_reason"]) == ("expired", "no_mitra_available")
    assert events(ctx, sid) == ["requested", "offered", "declined", "expired"]
    assert availability.is_seeded(ctx)
