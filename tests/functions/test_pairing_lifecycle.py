"""Chat sessions through the real entry points: request, accept, pay, extend, end, reroute, cancel."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from shared import app_config
from shared.context import AppContext
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, events, online_mitras, used
from tests.support.tokens import bearer, cc_token


def test_full_lifecycle_moves_capacity_0_1_1_1_0_in_the_mirror(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    [(mitra, mitra_auth)] = online_mitras(ctx, 1)
    customer_id, auth = customer(ctx)
    seen = []

    resp = api("request", auth, json={"duration_minutes": 45})
    assert resp.status_code == 201, resp.json
    session = resp.json
    sid = session["id"]
    assert (session["status"], session["customer_id"], session["mitra_id"]) == ("searching", customer_id, None)
    assert session["offered_count"] == 1 and session["duration_minutes"] == 45
    seen.append(used(ctx, mitra))

    resp = api("accept", mitra_auth, sid)
    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["mitra_id"]) == ("pending_payment", mitra)
    deadline = datetime.fromisoformat(resp.json["payment_deadline_at"])
    assert deadline == clock() + timedelta(seconds=ctx.settings.payment_timeout_seconds)
    seen.append(used(ctx, mitra))

    resp = api("pay", bearer(cc_token(ctx)), sid)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "active"
    assert datetime.fromisoformat(resp.json["expires_at"]) == clock() + timedelta(minutes=45)
    seen.append(used(ctx, mitra))

    # Paid time is paid for (docs/payments.md): the extension waits for its own payment.
    resp = api("extend", auth, sid, json={"minutes": 15})
    assert resp.status_code == 200, resp.json
    assert datetime.fromisoformat(resp.json["expires_at"]) == clock() + timedelta(minutes=45)
    assert resp.json["payment"]["kind"] == "extension" and resp.json["payment"]["status"] == "pending"
    resp = api("pay", bearer(cc_token(ctx)), sid)
    assert resp.status_code == 200, resp.json
    assert datetime.fromisoformat(resp.json["expires_at"]) == clock() + timedelta(minutes=60)
    assert resp.json["extension_count"] == 1
    seen.append(used(ctx, mitra))

    resp = api("end", auth, sid)
    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["end_reason"]) == ("ended", "customer_ended")
    seen.append(used(ctx, mitra))

    assert seen == [(0, 0), (1, 1), (1, 1), (1, 1), (0, 0)]
    assert events(ctx, sid) == [
        "requested",
        "offered",
        "accepted",
        "payment_confirmed",
        "extension_requested",
        "extended",
        "ended",
    ]
    assert api("get", auth, sid).json["status"] == "ended"


def test_a_payment_confirmed_at_the_deadline_is_refused_and_the_session_expires_unpaid(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    [(mitra, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    assert api("accept", mitra_auth, sid).status_code == 200
    clock.advance(ctx.settings.payment_timeout_seconds)  # the deadline itself is already too late

    resp = api("pay", bearer(cc_token(ctx)), sid)

    # Deadlines are exact (docs/chat.md): the payment finds the session due and expires it first.
    assert resp.status_code == 409, resp.json
    assert resp.json["error"]["code"] == "PAYMENT_DEADLINE_PASSED"
    assert resp.json["error"]["current_status"] == "expired"
    row = ctx.db.one("SELECT status, paid_at FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid)
    assert (row["status"], row["paid_at"]) == ("expired", None)
    assert "payment_confirmed" not in events(ctx, sid)
    assert used(ctx, mitra) == (0, 0)


def test_a_customer_has_at_most_one_open_session(isolated_ctx: AppContext) -> None:
    online_mitras(isolated_ctx, 2)
    _, auth = customer(isolated_ctx)
    first = api("request", auth)
    assert first.status_code == 201
    assert first.json["duration_minutes"] == 30  # app_config session_default_minutes

    again = api("request", auth)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "SESSION_ALREADY_OPEN"
    assert again.json["error"]["session_id"] == first.json["id"]


def test_nobody_available_is_409_and_leaves_no_session_row(isolated_ctx: AppContext) -> None:
    _, auth = customer(isolated_ctx)
    resp = api("request", auth)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "NO_MITRA_AVAILABLE"
    assert isolated_ctx.db.scalar("SELECT count(*) FROM chat_sessions") == 0


def test_duration_is_validated(isolated_ctx: AppContext) -> None:
    online_mitras(isolated_ctx, 1)
    _, auth = customer(isolated_ctx)
    for bad in (0, -5, 1441, "ten", 1.5, True):
        resp = api("request", auth, json={"duration_minutes": bad})
        assert resp.status_code == 400, bad
        assert resp.json["error"]["field"] == "duration_minutes"
    sid = api("request", auth).json["id"]
    assert api("extend", auth, sid, json={}).json["error"]["field"] == "minutes"
    assert api("get", auth, "not-a-uuid").status_code == 400


def test_other_customers_sessions_are_not_found(isolated_ctx: AppContext) -> None:
    online_mitras(isolated_ctx, 1)
    _, owner = customer(isolated_ctx)
    _, stranger = customer(isolated_ctx)
    sid = api("request", owner).json["id"]
    for action in ("get", "cancel", "end", "reroute"):
        resp = api(action, stranger, sid)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "SESSION_NOT_FOUND", action
    assert api("extend", stranger, sid, json={"minutes": 5}).status_code == 404


def test_cancel_while_searching_closes_every_offer(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    mitras = online_mitras(ctx, 3)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]

    resp = api("cancel", auth, sid)
    assert resp.status_code == 200 and resp.json["status"] == "cancelled"
    responses = ctx.db.rows("SELECT response FROM pairing_offers WHERE session_id = CAST(:s AS uuid)", s=sid)
    assert [r["response"] for r in responses] == ["lost"] * 3
    late = api("accept", mitras[0][1], sid)
    assert late.status_code == 409 and late.json["error"]["current_status"] == "cancelled"
    clock.advance(app_config.DEFAULTS["session_cancel_cooldown_seconds"])  # the cooldown a cancel starts
    assert api("request", auth).status_code == 201  # a cancelled session is no longer open


def test_reroute_excludes_the_previous_mitra_and_reblasts(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    mitras = online_mitras(ctx, 3)
    ids = {m for m, _ in mitras}
    auth_of = dict(mitras)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    first = mitras[0][0]
    assert api("accept", auth_of[first], sid).status_code == 200
    assert used(ctx, first) == (1, 1)

    resp = api("reroute", auth, sid)
    assert resp.status_code == 200, resp.json
    assert (resp.json["status"], resp.json["mitra_id"]) == ("searching", None)
    assert used(ctx, first) == (0, 0)
    excluded = ctx.db.scalar("SELECT excluded_mitra_ids FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid)
    assert [str(x) for x in excluded] == [first]
    offers = {
        str(r["mitra_id"]): r["response"]
        for r in ctx.db.rows("SELECT mitra_id, response FROM pairing_offers WHERE session_id = CAST(:s AS uuid)", s=sid)
    }
    # The two who lost the first race are offered again; the previous mitra is not.
    assert offers == {first: "accepted", **{m: None for m in ids - {first}}}
    again = api("accept", auth_of[first], sid)
    assert again.status_code == 409 and again.json["error"]["code"] == "OFFER_CLOSED"

    second = next(iter(ids - {first}))
    assert api("accept", auth_of[second], sid).json["mitra_id"] == second
    assert events(ctx, sid) == ["requested", "offered", "accepted", "rerouted", "offered", "accepted"]


def test_reroute_of_a_paid_session_goes_straight_to_active_with_the_paid_time_left(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    (a, a_auth), (b, b_auth) = online_mitras(ctx, 2)
    _, auth = customer(ctx)
    sid = api("request", auth, json={"duration_minutes": 20}).json["id"]
    winner, loser_auth = (a, b_auth) if api("accept", a_auth, sid).status_code == 200 else (b, a_auth)
    api("pay", bearer(cc_token(ctx)), sid)
    clock.advance(60)

    assert api("reroute", auth, sid).json["status"] == "searching"
    resp = api("accept", loser_auth, sid)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "active"
    # Paid time is paid for (docs/payments.md): 19 of the 20 paid minutes are left, not a fresh 20.
    assert datetime.fromisoformat(resp.json["expires_at"]) == clock() + timedelta(minutes=19)
    assert used(ctx, winner) == (0, 0)


def test_reroute_with_nobody_else_available_keeps_the_session(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    [(mitra, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    api("accept", mitra_auth, sid)

    resp = api("reroute", auth, sid)
    assert resp.status_code == 409
    assert resp.json["error"]["code"] == "NO_MITRA_AVAILABLE"
    assert resp.json["error"]["current_status"] == "pending_payment"
    session = api("get", auth, sid).json
    assert (session["status"], session["mitra_id"]) == ("pending_payment", mitra)
    assert used(ctx, mitra) == (1, 1)


def test_when_every_offer_is_declined_the_session_reblasts_to_new_mitras(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, pairing_blast_size=2)
    mitras = online_mitras(ctx, 3)
    auth_of = dict(mitras)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    first_round = [
        str(r["mitra_id"])
        for r in ctx.db.rows("SELECT mitra_id FROM pairing_offers WHERE session_id = CAST(:s AS uuid)", s=sid)
    ]
    assert len(first_round) == 2

    assert api("decline", auth_of[first_round[0]], sid).json["status"] == "searching"
    assert api("get", auth, sid).json["offered_count"] == 2
    resp = api("decline", auth_of[first_round[1]], sid)
    assert resp.status_code == 200 and resp.json["status"] == "searching"
    assert api("get", auth, sid).json["offered_count"] == 3
    (third,) = set(auth_of) - set(first_round)
    blocked = api("accept", auth_of[first_round[0]], sid)
    assert blocked.status_code == 409 and blocked.json["error"]["code"] == "OFFER_DECLINED"

    last = api("decline", auth_of[third], sid)
    assert last.json["status"] == "expired"  # nobody left to ask: the customer hears it now
    session = api("get", auth, sid).json
    assert (session["status"], session["end_reason"]) == ("expired", "no_mitra_available")
    assert events(ctx, sid) == ["requested", "offered", "declined", "declined", "offered", "declined", "expired"]


def test_mitra_can_end_its_own_session_only(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    (a, a_auth), (b, b_auth) = online_mitras(ctx, 2)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    holder_auth, other_auth, holder = (
        (a_auth, b_auth, a) if api("accept", a_auth, sid).status_code == 200 else (b_auth, a_auth, b)
    )

    assert api("mitra_end", other_auth, sid).status_code == 404
    resp = api("mitra_end", holder_auth, sid)
    assert (resp.json["status"], resp.json["end_reason"]) == ("ended", "mitra_ended")
    assert used(ctx, holder) == (0, 0)


def test_only_offered_mitras_may_accept(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    [(_, outsider_auth)] = online_mitras(ctx, 1)  # online after the blast: never offered
    resp = api("accept", outsider_auth, sid)
    assert resp.status_code == 403 and resp.json["error"]["code"] == "NOT_OFFERED"
    assert api("decline", outsider_auth, sid).status_code == 403
    assert api("accept", outsider_auth, "00000000-0000-0000-0000-000000000000").status_code == 404


def test_customer_tokens_cannot_accept_and_mitra_tokens_cannot_request(isolated_ctx: AppContext) -> None:
    [(_, mitra_auth)] = online_mitras(isolated_ctx, 1)
    _, auth = customer(isolated_ctx)
    assert api("request", mitra_auth).status_code == 403
    sid = api("request", auth).json["id"]
    assert api("accept", auth, sid).status_code == 403
    assert api("pay", auth, sid).status_code == 403
