"""The manual path (PAYMENT_PROVIDER=manual): staff confirm payments, and who and why are kept."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.context import AppContext
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_user


def test_staff_confirmation_records_who_and_why_on_the_payment_the_events_and_the_audit_log(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    [(_, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth, json={"duration_minutes": 20}).json["id"]
    assert api("accept", mitra_auth, sid).status_code == 200
    payment = api("get", auth, sid).json["payment"]
    assert (payment["amount"], payment["token"], payment["redirect_url"]) == (20_000, None, None)
    staff_id, staff_token = cc_user(ctx, "operator")

    resp = api("pay", bearer(staff_token), sid, json={"reason": "bank transfer ref 8812"})

    assert resp.status_code == 200 and resp.json["status"] == "active"
    row = ctx.db.one("SELECT status, settled_by, reason FROM payments WHERE session_id = CAST(:s AS uuid)", s=sid)
    assert row == {"status": "paid", "settled_by": f"cc:{staff_id}", "reason": "bank transfer ref 8812"}
    event = ctx.db.one(
        "SELECT actor, detail FROM chat_session_events"
        " WHERE session_id = CAST(:s AS uuid) AND type = 'payment_confirmed'",
        s=sid,
    )
    assert event is not None and event["actor"] == f"cc:{staff_id}"
    assert event["detail"]["reason"] == "bank transfer ref 8812" and event["detail"]["amount_idr"] == 20_000
    audit = ctx.db.rows("SELECT actor, action, target_id, detail FROM cc_audit_log WHERE action = 'payment.confirm'")
    assert [(a["actor"], a["target_id"], a["detail"]["reason"]) for a in audit] == [
        (f"cc:{staff_id}", sid, "bank transfer ref 8812")
    ]


def test_staff_confirm_a_waiting_extension_and_only_then_the_time_moves(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    [(_, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth, json={"duration_minutes": 10}).json["id"]
    api("accept", mitra_auth, sid)
    staff = bearer(cc_user(ctx)[1])
    paid = api("pay", staff, sid).json
    assert api("pay", staff, sid).json == paid  # a repeat with nothing waiting is a no-op

    assert api("extend", auth, sid, json={"minutes": 240}).json["expires_at"] == paid["expires_at"]
    extended = api("pay", staff, sid, json={"reason": "cash"})

    assert extended.status_code == 200
    assert datetime.fromisoformat(extended.json["expires_at"]) == clock() + timedelta(minutes=250)
    assert api("get", auth, sid).json["payment"]["status"] == "paid"


def test_a_request_for_a_duration_not_on_the_price_list_is_refused(isolated_ctx: AppContext) -> None:
    online_mitras(isolated_ctx, 1)
    _, auth = customer(isolated_ctx)
    resp = api("request", auth, json={"duration_minutes": 7})
    assert resp.status_code == 400 and resp.json["error"]["field"] == "duration_minutes"
    assert api("request", auth, json={"duration_minutes": 15}).json["amount_idr"] == 15_000


def test_staff_set_the_price_and_the_duration_list_and_new_requests_follow(isolated_ctx: AppContext) -> None:
    from tests.support.apps import client

    online_mitras(isolated_ctx, 1)
    _, auth = customer(isolated_ctx)
    admin = bearer(cc_user(isolated_ctx, "admin")[1])
    put = client("app_config_put")

    bad = put.put("/internal/app-config/session_allowed_minutes", headers=admin, json={"value": [15, 15]})
    assert bad.status_code == 400 and bad.json["error"]["field"] == "value"
    assert put.put("/internal/app-config/session_allowed_minutes", headers=admin, json={"value": 15}).status_code == 400
    saved = put.put("/internal/app-config/session_allowed_minutes", headers=admin, json={"value": [25, 7]})
    assert saved.status_code == 200 and saved.json["value"] == [7, 25]
    assert put.put("/internal/app-config/price_per_minute_idr", headers=admin, json={"value": 1500}).status_code == 200

    assert api("request", auth, json={"duration_minutes": 15}).status_code == 400
    assert api("request", auth, json={"duration_minutes": 7}).json["amount_idr"] == 10_500
