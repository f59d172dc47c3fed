"""Concurrent accepts: Postgres picks exactly one winner, and a mitra never exceeds its capacity."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from typing import Any

from shared.context import AppContext
from tests.auth_support import client
from tests.pairing_support import api, customer, online_mitras, used


def _all_at_once(calls: list[tuple[dict[str, str], str]]) -> list[Any]:
    """Run accept calls in threads released together, each thread with its own test client."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, auth: dict[str, str], session_id: str) -> None:
        app = client("pairing_mitra_accept")
        barrier.wait()
        resp = api("accept", auth, session_id, app=app)
        results[i] = (resp.status_code, resp.json)

    threads = [threading.Thread(target=run, args=(i, a, s)) for i, (a, s) in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_fifty_offered_mitras_accepting_one_session_make_exactly_one_winner(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, pairing_blast_size=50)
    mitras = online_mitras(ctx, 50)
    _, auth = customer(ctx)
    session = api("request", auth).json
    assert session["offered_count"] == 50

    results = _all_at_once([(mitra_auth, session["id"]) for _, mitra_auth in mitras])

    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 1, 409: 49}
    assert {body["error"]["code"] for status, body in results if status == 409} == {"ALREADY_TAKEN"}
    winner = next(body["mitra_id"] for status, body in results if status == 200)
    rows = ctx.db.rows("SELECT status, mitra_id FROM chat_sessions")
    assert [(r["status"], str(r["mitra_id"])) for r in rows] == [("pending_payment", winner)]
    assert used(ctx, winner) == (1, 1)
    assert all(used(ctx, m) == (0, 0) for m, _ in mitras if m != winner)
    offers = Counter(
        r["response"]
        for r in ctx.db.rows("SELECT response FROM pairing_offers WHERE session_id = CAST(:s AS uuid)", s=session["id"])
    )
    assert offers == {"accepted": 1, "lost": 49}
    assert ctx.db.scalar("SELECT count(*) FROM chat_session_events WHERE type = 'accepted'") == 1


def test_one_mitra_with_max_one_accepting_ten_sessions_at_once_wins_exactly_one(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    [(mitra, mitra_auth)] = online_mitras(ctx, 1, max_sessions=1)
    sessions = []
    for _ in range(10):
        _, auth = customer(ctx)
        resp = api("request", auth)
        assert resp.status_code == 201, resp.json
        sessions.append(resp.json["id"])

    results = _all_at_once([(mitra_auth, sid) for sid in sessions])

    assert Counter(status for status, _ in results) == {200: 1, 409: 9}
    assert {body["error"]["code"] for status, body in results if status == 409} == {"AT_CAPACITY"}
    assert used(ctx, mitra) == (1, 1)
    assert ctx.db.scalar("SELECT count(*) FROM chat_sessions WHERE status = 'searching'") == 9
