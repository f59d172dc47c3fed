"""Concurrent accepts: Postgres picks exactly one winner, and a mitra never exceeds its capacity.

The herd tests release many accepts at once; the held tests make the interleaving certain:
the test's own transaction holds a row lock that one accept needs after all its checks, so
that accept waits there while another runs, and what decides is the conditional UPDATE or
the mitra row lock, never the checks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.pairing_support import api, customer, online_mitras, used


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


def _accept_in_thread(auth: dict[str, str], session_id: str, out: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        resp = api("accept", auth, session_id, app=client("pairing_mitra_accept"))
        out["reply"] = (resp.status_code, resp.json)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _lock_waiters(ctx: AppContext) -> int:
    return int(
        ctx.db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    )


def _blocked_by(ctx: AppContext, pid: int) -> bool:
    return bool(ctx.db.scalar("SELECT count(*) FROM pg_stat_activity WHERE :p = ANY(pg_blocking_pids(pid))", p=pid))


def _hold_one_accept_while_another_runs(
    ctx: AppContext,
    hold: tuple[str, str],
    held: tuple[dict[str, str], str],
    other: tuple[dict[str, str], str],
) -> tuple[Any, Any]:
    """Stop `held` on a row lock this test holds; run `other` until it commits or waits on a lock; go on.

    `hold` is (SQL locking one row, its id): the test's own transaction takes that lock first,
    so the held accept passes its checks and then waits at the statement that needs the row.
    The replies (status, body) of the held accept and of the other one.
    """
    held_out: dict[str, Any] = {}
    other_out: dict[str, Any] = {}
    sql, row_id = hold
    with ctx.db.transaction() as holder:
        pid = int(holder.scalar("SELECT pg_backend_pid()"))
        assert holder.one(sql, id=row_id) is not None
        held_thread = _accept_in_thread(*held, held_out)
        deadline = time.monotonic() + 30
        while not _blocked_by(ctx, pid):
            assert held_thread.is_alive(), f"the held accept ended without reaching the held row: {held_out}"
            assert time.monotonic() < deadline, "the held accept never reached the held row"
            time.sleep(0.01)
        other_thread = _accept_in_thread(*other, other_out)
        while other_thread.is_alive() and _lock_waiters(ctx) < 2:  # the held accept is one waiter
            assert time.monotonic() < deadline, "the other accept neither finished nor waited on a lock"
            time.sleep(0.01)
    held_thread.join(timeout=30)
    other_thread.join(timeout=30)
    return held_out["reply"], other_out["reply"]


# The held accept stops at its capacity check's mitra row lock, after every check on the session.
_MITRA_ROW = "SELECT id FROM mitras WHERE id = CAST(:id AS uuid) FOR NO KEY UPDATE"
# The held accept stops at its conditional UPDATE, holding its mitra row lock, capacity counted.
_SESSION_ROW = "SELECT id FROM chat_sessions WHERE id = CAST(:id AS uuid) FOR UPDATE"


def test_an_accept_held_after_its_checks_loses_to_one_that_committed_meanwhile(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    (late, late_auth), (first, first_auth) = online_mitras(ctx, 2)
    _, auth = customer(ctx)
    session = api("request", auth).json
    assert session["offered_count"] == 2

    late_reply, first_reply = _hold_one_accept_while_another_runs(
        ctx, (_MITRA_ROW, late), held=(late_auth, session["id"]), other=(first_auth, session["id"])
    )

    assert first_reply[0] == 200, first_reply
    assert late_reply[0] == 409, late_reply
    assert late_reply[1]["error"]["code"] == "ALREADY_TAKEN"
    row = ctx.db.one("SELECT status, mitra_id FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=session["id"])
    assert (row["status"], str(row["mitra_id"])) == ("pending_payment", first)
    assert (used(ctx, first), used(ctx, late)) == ((1, 1), (0, 0))
    offers = ctx.db.rows(
        "SELECT mitra_id, response FROM pairing_offers WHERE session_id = CAST(:s AS uuid)", s=session["id"]
    )
    assert {str(r["mitra_id"]): r["response"] for r in offers} == {first: "accepted", late: "lost"}
    assert ctx.db.scalar("SELECT count(*) FROM chat_session_events WHERE type = 'accepted'") == 1


def test_a_mitra_at_max_one_held_mid_accept_cannot_win_a_second_session_meanwhile(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    [(mitra, mitra_auth)] = online_mitras(ctx, 1, max_sessions=1)
    sessions = []
    for _ in range(2):
        _, auth = customer(ctx)
        resp = api("request", auth)
        assert resp.status_code == 201, resp.json
        sessions.append(resp.json["id"])

    held_reply, other_reply = _hold_one_accept_while_another_runs(
        ctx, (_SESSION_ROW, sessions[0]), held=(mitra_auth, sessions[0]), other=(mitra_auth, sessions[1])
    )

    assert held_reply[0] == 200, held_reply
    assert other_reply[0] == 409, other_reply
    assert other_reply[1]["error"]["code"] == "AT_CAPACITY"
    assert used(ctx, mitra) == (1, 1)
    statuses = {
        str(r["id"]): r["status"]
        for r in ctx.db.rows("SELECT id, status FROM chat_sessions WHERE id = ANY(CAST(:ids AS uuid[]))", ids=sessions)
    }
    assert statuses == {sessions[0]: "pending_payment", sessions[1]: "searching"}
