"""Moderation writes over HTTP: a mitra deactivated mid-session, staff force-end and reroute.

The money rule each test checks is in docs/payments.md ("Paid time is paid for"), the
moderation rules in docs/control-center.md ("Moderating a session").
"""

from __future__ import annotations

from typing import Any

from shared import notify, push
from shared.context import AppContext
from tests import apps
from tests.chat_support import Pair, active_session, receive, send
from tests.helpers import FakeClock
from tests.pairing_support import api, customer, online_mitras, used
from tests.tokens import bearer, cc_token


def _register_devices(ctx: AppContext, pair: Pair) -> None:
    with ctx.db.transaction() as tx:
        for user_type, user_id in (("customer", pair.customer_id), ("mitra", pair.mitra_id)):
            tx.execute(
                "INSERT INTO devices (user_type, user_id, fcm_token, platform)"
                " VALUES (:t, CAST(:u AS uuid), :tok, 'android')",
                t=user_type,
                u=user_id,
                tok=f"tok-{user_id}",
            )
        tx.commit()


def _pushes_to(ctx: AppContext, user_id: str) -> list[dict[str, Any]]:
    assert notify.drain(ctx)  # pushes leave after the response, from the context's outbox
    log_push: Any = push.provider(ctx)
    return [data for tokens, data in log_push.sent if tokens == [f"tok-{user_id}"]]


def _row(ctx: AppContext, sid: str) -> dict[str, Any]:
    row = ctx.db.one(
        "SELECT status, end_reason, duration_minutes, amount_idr, mitra_id, expires_at FROM chat_sessions"
        " WHERE id = CAST(:s AS uuid)",
        s=sid,
    )
    assert row is not None
    return row


def _refunds(ctx: AppContext, sid: str) -> list[tuple[int, str]]:
    rows = ctx.db.rows(
        "SELECT amount_idr, reason FROM session_refunds WHERE session_id = CAST(:s AS uuid) ORDER BY created_at",
        s=sid,
    )
    return [(int(r["amount_idr"]), r["reason"]) for r in rows]


def _deactivate(mitra_id: str, headers: dict[str, str]) -> Any:
    return apps.client("mitras_deactivate").post(f"/internal/mitras/{mitra_id}/deactivate", headers=headers)


def test_deactivating_a_mitra_mid_session_ends_it_tells_both_parties_and_owes_the_unused_time(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    """Rule: a session ended early through no fault of the customer records a refund due."""
    ctx = isolated_ctx
    pair = active_session(ctx)
    _register_devices(ctx, pair)
    paid = _row(ctx, pair.session_id)
    clock.advance(4 * 60)
    operator = bearer(cc_token(ctx, "operator"))

    resp = _deactivate(pair.mitra_id, operator)

    assert resp.status_code == 200, resp.json
    assert resp.json["ended_chat_sessions"] == [pair.session_id]
    row = _row(ctx, pair.session_id)
    assert (row["status"], row["end_reason"]) == ("ended", "mitra_deactivated")
    total = paid["duration_minutes"] * 60
    owed = paid["amount_idr"] * (total - 4 * 60) // total
    assert _refunds(ctx, pair.session_id) == [(owed, "mitra_deactivated")]
    # Both parties are told: a push each, and the system message in their conversation.
    for user_id in (pair.customer_id, pair.mitra_id):
        [ended] = [p for p in _pushes_to(ctx, user_id) if p["type"] == "session_ended"]
        assert (ended["session_id"], ended["end_reason"]) == (pair.session_id, "mitra_deactivated")
    last = receive("client", pair.customer, pair.session_id).json["messages"][-1]
    assert (last["sender_type"], last["body"], last["detail"]) == (
        "system",
        "ended",
        {"end_reason": "mitra_deactivated"},
    )
    # The conversation is closed, the mitra's capacity freed, and the audit row names the session.
    assert send("client", pair.customer, pair.session_id, "still there?").status_code == 409
    assert used(ctx, pair.mitra_id) == (0, 0)
    audit = ctx.db.one("SELECT detail FROM cc_audit_log WHERE action = 'mitra.deactivate'")
    assert audit is not None and audit["detail"]["ended_chat_sessions"] == [pair.session_id]


def test_deactivating_a_mitra_ends_an_unpaid_session_closes_its_payment_and_owes_nothing(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    [(mitra_id, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth, json={"duration_minutes": 10}).json["id"]
    assert api("accept", mitra_auth, sid).status_code == 200

    assert _deactivate(mitra_id, bearer(cc_token(ctx, "operator"))).status_code == 200

    assert _row(ctx, sid)["status"] == "ended"
    payment = ctx.db.one("SELECT status, reason FROM payments WHERE session_id = CAST(:s AS uuid)", s=sid)
    assert payment == {"status": "failed", "reason": "mitra_deactivated"}
    assert _refunds(ctx, sid) == []
    assert api("pay", bearer(cc_token(ctx)), sid).status_code == 409  # nothing is payable any more
