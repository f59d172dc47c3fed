"""The session-expiry pass under an injected clock: what expires when, and overlapping runs."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from shared import notify, pairing, push
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.sessions import store
from shared.sessions.settle import expire_due_sessions
from tests.support.helpers import FakeClock
from tests.support.pairing_support import online_mitras, used

ZERO = {"expired_searching": 0, "expired_unpaid": 0, "ended_active": 0}


def _customer_with_device(ctx: AppContext) -> Principal:
    with ctx.db.transaction() as tx:
        cid = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('c') RETURNING id"))
        tx.execute(
            "INSERT INTO devices (user_type, user_id, fcm_token, platform)"
            " VALUES ('customer', CAST(:c AS uuid), :t, 'android')",
            c=cid,
            t=f"tok-{cid}",
        )
        tx.commit()
    return Principal("customer", cid, "sid")


def _sessions(ctx: AppContext, searching: int, unpaid: int, active: int) -> dict[str, list[str]]:
    """Sessions in each state; each accepted one held by its own mitra (max 1), one mitra left free."""
    mitras = [Principal("mitra", m, "sid") for m, _ in online_mitras(ctx, unpaid + active + 1)]
    out: dict[str, list[str]] = {"searching": [], "unpaid": [], "active": []}
    cc = Principal("cc", "00000000-0000-0000-0000-000000000001", "sid", "admin")
    for state, n in (("unpaid", unpaid), ("active", active), ("searching", searching)):
        for _ in range(n):
            session = pairing.request_session(ctx, _customer_with_device(ctx), 30)
            if state != "searching":
                holder = next(m for m in mitras if used(ctx, m.user_id)[0] == 0)
                pairing.accept(ctx, holder, session["id"])
            if state == "active":
                pairing.confirm_payment(ctx, cc, session["id"])
            out[state].append(session["id"])
    return out


def _status(ctx: AppContext) -> dict[str, str]:
    return {str(r["id"]): r["status"] for r in ctx.db.rows("SELECT id, status FROM chat_sessions")}


def test_each_kind_expires_at_its_own_deadline(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    s = _sessions(ctx, searching=1, unpaid=1, active=1)
    holder_unpaid = str(
        ctx.db.scalar("SELECT mitra_id FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=s["unpaid"][0])
    )
    holder_active = str(
        ctx.db.scalar("SELECT mitra_id FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=s["active"][0])
    )

    clock.advance(ctx.settings.pairing_timeout_seconds - 1)
    assert expire_due_sessions(ctx) == ZERO
    clock.advance(1)
    assert expire_due_sessions(ctx) == {**ZERO, "expired_searching": 1}
    clock.advance(ctx.settings.payment_timeout_seconds - ctx.settings.pairing_timeout_seconds)
    assert expire_due_sessions(ctx) == {**ZERO, "expired_unpaid": 1}
    assert used(ctx, holder_unpaid) == (0, 0)
    assert used(ctx, holder_active) == (1, 1)
    clock.advance(30 * 60 - ctx.settings.payment_timeout_seconds)
    assert expire_due_sessions(ctx) == {**ZERO, "ended_active": 1}
    assert used(ctx, holder_active) == (0, 0)

    rows = {
        str(r["id"]): (r["status"], r["end_reason"])
        for r in ctx.db.rows("SELECT id, status, end_reason FROM chat_sessions")
    }
    assert rows == {
        s["searching"][0]: ("expired", "pairing_timeout"),
        s["unpaid"][0]: ("expired", "payment_timeout"),
        s["active"][0]: ("ended", "expired"),
    }
    assert expire_due_sessions(ctx) == ZERO


def test_a_reblast_restarts_the_pairing_timeout(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    (m1, _), (m2, _) = online_mitras(ctx, 2)
    customer = _customer_with_device(ctx)
    session = pairing.request_session(ctx, customer, 30)
    first = next(
        m
        for m in (m1, m2)
        if ctx.db.scalar(
            "SELECT count(*) FROM pairing_offers WHERE session_id = CAST(:s AS uuid) AND mitra_id = CAST(:m AS uuid)",
            s=session["id"],
            m=m,
        )
    )
    clock.advance(60)
    pairing.accept(ctx, Principal("mitra", first, "sid"), session["id"])
    pairing.reroute(ctx, customer, session["id"])
    clock.advance(ctx.settings.pairing_timeout_seconds - 1)
    assert expire_due_sessions(ctx) == ZERO  # 119 s since the re-blast, 179 s since the request
    clock.advance(1)
    assert expire_due_sessions(ctx)["expired_searching"] == 1


def test_three_overlapping_runs_end_like_one_with_no_duplicate_events_or_pushes(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    s = _sessions(ctx, searching=6, unpaid=3, active=3)
    assert notify.drain(ctx)  # pushes are queued off the request path
    log_push: Any = push.provider(ctx)
    log_push.sent.clear()
    clock.advance(30 * 60 + 1)

    barrier = threading.Barrier(3)
    results: list[dict[str, int]] = []

    def run() -> None:
        barrier.wait()
        results.append(expire_due_sessions(ctx))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert len(results) == 3
    total = {k: sum(r[k] for r in results) for k in ZERO}
    assert total == {"expired_searching": 6, "expired_unpaid": 3, "ended_active": 3}
    final = _status(ctx)
    assert {final[i] for i in s["searching"] + s["unpaid"]} == {"expired"}
    assert {final[i] for i in s["active"]} == {"ended"}
    per_session = Counter(
        str(r["session_id"])
        for r in ctx.db.rows("SELECT session_id FROM chat_session_events WHERE actor = 'system:session-expiry'")
    )
    assert per_session == Counter({sid: 1 for sid in final})
    assert notify.drain(ctx)
    customer_pushes = Counter(data["session_id"] for tokens, data in log_push.sent if tokens[0].startswith("tok-"))
    assert customer_pushes == Counter({sid: 1 for sid in final})
    assert expire_due_sessions(ctx) == ZERO


def test_the_payment_update_itself_refuses_a_session_past_its_deadline(isolated_ctx: AppContext, clock: FakeClock):
    # A payment that races the deadline: the settle before it found the session not yet due, and
    # the clock passed the deadline before its UPDATE ran. The conditional UPDATE must decide.
    ctx = isolated_ctx
    s = _sessions(ctx, searching=0, unpaid=1, active=0)
    sid = s["unpaid"][0]
    clock.advance(ctx.settings.payment_timeout_seconds)
    with ctx.db.transaction() as tx:
        assert store.confirm_payment(tx, sid, ctx.now()) is None
        tx.commit()
    row = ctx.db.one("SELECT status, paid_at FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid)
    assert (row["status"], row["paid_at"]) == ("pending_payment", None)
