"""Moderation writes over HTTP: a mitra deactivated mid-session, staff force-end and reroute.

The money rule each test checks is in docs/payments.md ("Paid time is paid for"), the
moderation rules in docs/control-center.md ("Moderating a session").
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from shared import notify, push
from shared.context import AppContext
from tests.support import apps
from tests.support.chat_support import Pair, active_session, receive, send
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras, used
from tests.support.tokens import bearer, cc_token, cc_user


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


def _staff(action: str, session_id: str, headers: dict[str, str], body: Any = None) -> Any:
    entry = {"end": "chat_sessions_end", "reroute": "chat_sessions_reroute"}[action]
    return apps.client(entry).post(f"/internal/chat-sessions/{session_id}/{action}", headers=headers, json=body)


def test_staff_force_end_a_paid_session_owes_the_unused_time_tells_both_and_is_audited(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    """Rule: a session ended early through no fault of the customer records a refund due."""
    ctx = isolated_ctx
    pair = active_session(ctx)
    _register_devices(ctx, pair)
    paid = _row(ctx, pair.session_id)
    clock.advance(4 * 60)
    staff_id, token = cc_user(ctx, "operator")

    resp = _staff("end", pair.session_id, bearer(token), {"reason": "abusive messages, ticket 4411"})

    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["end_reason"]) == ("ended", "closed_by_support")
    total = paid["duration_minutes"] * 60
    owed = paid["amount_idr"] * (total - 4 * 60) // total
    assert _refunds(ctx, pair.session_id) == [(owed, "closed_by_support")]
    for user_id in (pair.customer_id, pair.mitra_id):
        [ended] = [p for p in _pushes_to(ctx, user_id) if p["type"] == "session_ended"]
        assert ended["end_reason"] == "closed_by_support"
    last = receive("mitra", pair.mitra, pair.session_id).json["messages"][-1]
    assert (last["body"], last["detail"]) == ("ended", {"end_reason": "closed_by_support"})
    assert "ticket 4411" not in str(last)  # the staff's reason is for staff, not the parties
    assert used(ctx, pair.mitra_id) == (0, 0)
    [audit] = ctx.db.rows("SELECT actor, target_id, detail FROM cc_audit_log WHERE action = 'chat_session.end'")
    assert (audit["actor"], audit["target_id"]) == (f"cc:{staff_id}", pair.session_id)
    assert audit["detail"] == {
        "reason": "abusive messages, ticket 4411",
        "from_status": "active",
        "refund_due_idr": owed,
    }
    again = _staff("end", pair.session_id, bearer(token), {"reason": "twice"})
    assert again.status_code == 409 and again.json["error"]["code"] == "INVALID_TRANSITION"
    assert _refunds(ctx, pair.session_id) == [(owed, "closed_by_support")]


def test_staff_force_end_of_a_searching_session_cancels_it_and_closes_its_offers(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    online_mitras(ctx, 2)
    _, auth = customer(ctx)
    sid = api("request", auth, json={"duration_minutes": 10}).json["id"]

    resp = _staff("end", sid, bearer(cc_token(ctx, "operator")), {"reason": "duplicate request"})

    assert (resp.status_code, resp.json["status"], resp.json["end_reason"]) == (200, "cancelled", "closed_by_support")
    assert (
        ctx.db.scalar(
            "SELECT count(*) FROM pairing_offers WHERE session_id = CAST(:s AS uuid) AND response IS NULL", s=sid
        )
        == 0
    )
    assert _refunds(ctx, sid) == []


def test_staff_reroute_keeps_the_remaining_paid_time_for_the_next_mitra_and_is_audited(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    """Rule: a rerouted paid session keeps the paid time it had left."""
    ctx = isolated_ctx
    pair = active_session(ctx)
    _register_devices(ctx, pair)
    clock.advance(3 * 60)
    left = (_row(ctx, pair.session_id)["expires_at"] - clock()).total_seconds()
    [(_, next_auth)] = online_mitras(ctx, 1)
    staff_id, token = cc_user(ctx, "operator")

    resp = _staff("reroute", pair.session_id, bearer(token), {"reason": "mitra unresponsive"})

    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["mitra_id"]) == ("searching", None)
    for user_id in (pair.customer_id, pair.mitra_id):
        assert [p["type"] for p in _pushes_to(ctx, user_id)] == ["session_rerouted"]
    [audit] = ctx.db.rows("SELECT actor, detail FROM cc_audit_log WHERE action = 'chat_session.reroute'")
    assert audit["actor"] == f"cc:{staff_id}"
    assert audit["detail"] == {
        "reason": "mitra unresponsive",
        "previous_mitra_id": pair.mitra_id,
        "from_status": "active",
        "paid_seconds_left": int(left),
    }
    clock.advance(20)  # the search is not paid time lost
    accepted = api("accept", next_auth, pair.session_id)
    assert accepted.status_code == 200 and accepted.json["status"] == "active"
    assert _row(ctx, pair.session_id)["expires_at"] == clock() + timedelta(seconds=int(left))
    assert api("accept", pair.mitra, pair.session_id).status_code in (403, 409)  # the previous mitra is out


def test_staff_reroute_with_nobody_free_leaves_the_session_as_it_was(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    before = _row(ctx, pair.session_id)

    resp = _staff("reroute", pair.session_id, bearer(cc_token(ctx, "operator")), {"reason": "try another"})

    assert resp.status_code == 409 and resp.json["error"]["code"] == "NO_MITRA_AVAILABLE"
    assert _row(ctx, pair.session_id) == before
    assert ctx.db.scalar("SELECT count(*) FROM cc_audit_log WHERE action = 'chat_session.reroute'") == 0


def test_force_end_and_reroute_refuse_other_callers_bad_input_and_unknown_sessions(isolated_ctx: AppContext) -> None:
    """Roles (docs/control-center.md): admins and operators; a customer or mitra token is 403, none 401."""
    ctx = isolated_ctx
    pair = active_session(ctx)
    online_mitras(ctx, 1)  # someone a reroute could go to
    before = _row(ctx, pair.session_id)
    deactivated_id, deactivated_token = cc_user(ctx, "operator")
    admin = bearer(cc_token(ctx, "admin"))
    assert (
        apps.client("cc_users_patch")
        .patch(f"/internal/control-center-users/{deactivated_id}", headers=admin, json={"is_active": False})
        .status_code
        == 200
    )
    body = {"reason": "attack"}
    for action in ("end", "reroute"):
        # The session's own customer and mitra, and the staff member whose access was taken away.
        for caller in (pair.customer, pair.mitra):
            resp = _staff(action, pair.session_id, caller, body)
            assert resp.status_code == 403 and resp.json["error"]["code"] == "WRONG_USER_TYPE"
        assert _staff(action, pair.session_id, {}, body).status_code == 401
        assert _staff(action, pair.session_id, bearer(deactivated_token), body).status_code == 401
        # Bad input from staff: the reason is required, 1..500 characters; the id a uuid.
        for bad in (None, {}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": 7}):
            resp = _staff(action, pair.session_id, admin, bad)
            assert resp.status_code == 400, (action, bad, resp.json)
            assert resp.json["error"]["code"] == "VALIDATION_FAILED"
        assert _staff(action, "not-a-uuid", admin, body).json["error"]["field"] == "id"
        unknown = _staff(action, str(uuid.uuid4()), admin, body)
        assert unknown.status_code == 404 and unknown.json["error"]["code"] == "SESSION_NOT_FOUND"
    assert _row(ctx, pair.session_id) == before
    assert ctx.db.scalar("SELECT count(*) FROM cc_audit_log WHERE action LIKE 'chat_session.%'") == 0


def test_staff_force_end_while_a_paid_session_searches_again_owes_the_time_the_reroute_kept(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    """Rule: paid time kept by a reroute is still the customer's; ending the search owes it back."""
    ctx = isolated_ctx
    pair = active_session(ctx)
    paid = _row(ctx, pair.session_id)
    clock.advance(3 * 60)
    left = int((paid["expires_at"] - clock()).total_seconds())
    online_mitras(ctx, 1)
    staff = bearer(cc_token(ctx, "operator"))
    assert _staff("reroute", pair.session_id, staff, {"reason": "slow answers"}).json["status"] == "searching"
    clock.advance(30)  # searching is not paid time used

    resp = _staff("end", pair.session_id, staff, {"reason": "customer asked by phone"})

    assert (resp.json["status"], resp.json["end_reason"]) == ("cancelled", "closed_by_support")
    total = paid["duration_minutes"] * 60
    assert _refunds(ctx, pair.session_id) == [(paid["amount_idr"] * left // total, "closed_by_support")]
