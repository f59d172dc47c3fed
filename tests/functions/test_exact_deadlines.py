"""Exact deadlines (docs/chat.md): reads and transitions settle an overdue session themselves, with no
sweep run, so nobody sees it live past its deadline and nothing late is accepted."""

from __future__ import annotations

from datetime import datetime

from shared import availability
from shared.context import AppContext
from tests.support import apps
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, events, online_mitras, used
from tests.support.tokens import bearer, cc_token

SWEEP_ACTOR = "system:session-expiry"


def _actors(ctx: AppContext, session_id: str) -> list[str]:
    rows = ctx.db.rows(
        "SELECT actor FROM chat_session_events WHERE session_id = CAST(:s AS uuid) ORDER BY at, id", s=session_id
    )
    return [r["actor"] for r in rows]


def _pending_payment(ctx: AppContext) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """(session id, holding mitra, customer auth, mitra auth) of a session waiting for payment."""
    [(mitra, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    assert api("accept", mitra_auth, sid).json["status"] == "pending_payment"
    return sid, mitra, auth, mitra_auth


def test_a_session_read_one_second_after_its_payment_deadline_is_expired_with_no_sweep(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    sid, mitra, auth, _ = _pending_payment(ctx)
    deadline = datetime.fromisoformat(api("get", auth, sid).json["payment_deadline_at"])
    assert used(ctx, mitra) == (1, 1)

    clock.advance((deadline - clock()).total_seconds() + 1)
    seen = api("get", auth, sid)

    assert seen.status_code == 200
    assert (seen.json["status"], seen.json["end_reason"]) == ("expired", "payment_timeout")
    assert seen.json["ended_at"] == clock().isoformat()
    assert events(ctx, sid)[-1] == "expired" and SWEEP_ACTOR not in _actors(ctx, sid)
    assert used(ctx, mitra) == (0, 0)  # capacity freed in Postgres and in the mirror by the read


def test_the_control_center_sees_overdue_sessions_settled_in_its_list_and_view(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    sid, _, _, _ = _pending_payment(ctx)
    h = bearer(cc_token(ctx, "operator"))
    clock.advance(ctx.settings.payment_timeout_seconds)  # the deadline is reached at exactly this instant

    listed = apps.client("chat_sessions_list").get("/internal/chat-sessions?status=pending_payment", headers=h)
    assert listed.json["chat_sessions"] == []  # settled before listing: no longer pending_payment
    view = apps.client("chat_sessions_get").get(f"/internal/chat-sessions/{sid}", headers=h).json
    assert view["status"] == "expired" and view["events"][-1]["actor"] == "system:deadline"


def test_payment_after_the_deadline_is_409_payment_deadline_passed(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    sid, mitra, auth, _ = _pending_payment(ctx)
    clock.advance(ctx.settings.payment_timeout_seconds + 1)

    late = api("pay", bearer(cc_token(ctx)), sid)

    assert late.status_code == 409
    assert late.json["error"]["code"] == "PAYMENT_DEADLINE_PASSED"
    assert late.json["error"]["current_status"] == "expired"
    assert api("get", auth, sid).json["status"] == "expired"
    assert used(ctx, mitra) == (0, 0)


def test_accept_after_the_pairing_deadline_is_409_session_expired(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    [(mitra, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    clock.advance(ctx.settings.pairing_timeout_seconds + 1)

    late = api("accept", mitra_auth, sid)

    assert late.status_code == 409
    assert (late.json["error"]["code"], late.json["error"]["current_status"]) == ("SESSION_EXPIRED", "expired")
    row = ctx.db.one("SELECT status, end_reason, mitra_id FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid)
    assert row == {"status": "expired", "end_reason": "pairing_timeout", "mitra_id": None}
    assert used(ctx, mitra) == (0, 0)
    assert api("decline", mitra_auth, sid).json["error"]["code"] == "SESSION_EXPIRED"


def test_an_accept_one_second_before_the_pairing_deadline_still_wins(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    [(_, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    clock.advance(ctx.settings.pairing_timeout_seconds - 1)
    assert api("accept", mitra_auth, sid).json["status"] == "pending_payment"


def test_extend_after_the_end_is_409_session_expired_and_the_session_is_ended(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    sid, mitra, auth, _ = _pending_payment(ctx)
    assert api("pay", bearer(cc_token(ctx)), sid).json["status"] == "active"
    clock.advance(30 * 60)

    late = api("extend", auth, sid, json={"minutes": 10})

    assert late.status_code == 409
    assert (late.json["error"]["code"], late.json["error"]["current_status"]) == ("SESSION_EXPIRED", "ended")
    assert (api("get", auth, sid).json["end_reason"]) == "expired"
    assert used(ctx, mitra) == (0, 0)


def test_a_new_request_is_not_blocked_by_an_overdue_open_session(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    [(mitra, _)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    first = api("request", auth).json["id"]
    clock.advance(ctx.settings.pairing_timeout_seconds)
    availability.set_online(ctx, mitra, "test")  # a fresh ping: the mitra is available again

    again = api("request", auth)

    assert again.status_code == 201, again.json
    assert api("get", auth, first).json["status"] == "expired"
