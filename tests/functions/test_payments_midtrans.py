"""Customers pay through Midtrans Snap (the loopback stand-in): the money rules of docs/payments.md."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.context import AppContext
from tests.conftest import isolated_database, make_context
from tests.support.apps import client
from tests.support.chat_support import receive, send
from tests.support.helpers import FakeClock, installed
from tests.support.midtrans_standin import MidtransStandIn
from tests.support.pairing_support import api, customer, events, online_mitras

SERVER_KEY = "SB-Mid-server-loopback-key"
NOTIFY = "/api/payments/midtrans/notification"


def notify(body: dict[str, Any]) -> Any:
    return client("payments_midtrans_notification").post(NOTIFY, json=body)


@pytest.fixture
def gateway(template_db: str, test_env: dict[str, str], clock: FakeClock) -> Iterator[MidtransStandIn]:
    """An isolated database, the stand-in, and the installed context paying through it."""
    standin = MidtransStandIn(SERVER_KEY, NOTIFY, deliver=lambda _url, body: notify(body).status_code)
    with standin, isolated_database(template_db, test_env) as url:
        app_ctx = make_context(
            clock,
            database_url=url,
            payment_provider="midtrans",
            midtrans_server_key=SERVER_KEY,
            midtrans_snap_url=standin.url,
            midtrans_api_url=standin.url,
        )
        with installed(app_ctx):
            standin.ctx = app_ctx  # type: ignore[attr-defined]
            yield standin


def _ctx(standin: MidtransStandIn) -> AppContext:
    return standin.ctx  # type: ignore[attr-defined,no-any-return]


def _accepted(standin: MidtransStandIn, minutes: int = 10) -> tuple[str, dict[str, str], tuple[str, dict[str, str]]]:
    ctx = _ctx(standin)
    [mitra] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth, json={"duration_minutes": minutes}).json["id"]
    assert api("accept", mitra[1], sid).status_code == 200
    return sid, auth, mitra


def _session(ctx: AppContext, sid: str) -> dict[str, Any]:
    row = ctx.db.one(
        "SELECT status, expires_at, paid_at, duration_minutes FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid
    )
    assert row is not None
    return row


def _order(ctx: AppContext, sid: str, kind: str = "session") -> str:
    return str(
        ctx.db.scalar(
            "SELECT order_id FROM payments WHERE session_id = CAST(:s AS uuid) AND kind = :k"
            " ORDER BY created_at DESC LIMIT 1",
            s=sid,
            k=kind,
        )
    )


def _refunds(ctx: AppContext, sid: str) -> list[tuple[int, str]]:
    rows = ctx.db.rows(
        "SELECT amount_idr, reason FROM session_refunds WHERE session_id = CAST(:s AS uuid) ORDER BY created_at",
        s=sid,
    )
    return [(int(r["amount_idr"]), r["reason"]) for r in rows]


def test_the_whole_paid_day_request_accept_pay_chat_extend_pay_end(gateway: MidtransStandIn, clock: FakeClock) -> None:
    ctx = _ctx(gateway)
    sid, auth, (_, mitra_auth) = _accepted(gateway, minutes=10)

    # The customer's session shows what to pay, where, and until when; Snap expires with it.
    session = api("get", auth, sid).json
    payment = session["payment"]
    assert session["status"] == "pending_payment" and session["amount_idr"] == 10_000
    assert (payment["amount"], payment["status"], payment["kind"]) == (10_000, "pending", "session")
    assert payment["token"] and payment["redirect_url"].startswith(gateway.url)
    assert payment["deadline"] == session["payment_deadline_at"]
    [created] = gateway.created
    assert created["transaction_details"] == {"order_id": f"S-{sid}-1", "gross_amount": 10_000}
    assert created["expiry"]["unit"] == "minute"
    assert created["expiry"]["duration"] == ctx.settings.payment_timeout_seconds // 60

    clock.advance(30)
    assert gateway.pay(f"S-{sid}-1") == 200
    row = _session(ctx, sid)
    assert row["status"] == "active" and row["expires_at"] == clock() + timedelta(minutes=10)

    assert send("client", auth, sid, "halo").status_code in (200, 201)
    assert [
        m["body"] for m in receive("mitra", mitra_auth, sid).json["messages"] if m["sender_type"] == "customer"
    ] == ["halo"]

    extended = api("extend", auth, sid, json={"minutes": 15})
    assert extended.status_code == 200, extended.json
    assert extended.json["payment"]["amount"] == 15_000 and extended.json["payment"]["kind"] == "extension"
    assert _session(ctx, sid)["expires_at"] == clock() + timedelta(minutes=10)  # not before it is paid
    assert gateway.pay(_order(ctx, sid, "extension")) == 200
    assert _session(ctx, sid)["expires_at"] == clock() + timedelta(minutes=25)

    assert api("end", auth, sid).json["status"] == "ended"
    assert events(ctx, sid) == [
        "requested",
        "offered",
        "accepted",
        "payment_confirmed",
        "extension_requested",
        "extended",
        "ended",
    ]
    assert _refunds(ctx, sid) == []  # the customer ended it: nothing is owed


def test_a_forged_signature_changes_nothing(gateway: MidtransStandIn) -> None:
    """Rule: a notification is acted on only when its signature_key verifies with the server key."""
    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)
    body = gateway.set_status(f"S-{sid}-1", "settlement")
    forged = {**body, "signature_key": "0" * 128}

    resp = notify(forged)

    assert resp.status_code == 401 and resp.json["error"]["code"] == "INVALID_SIGNATURE"
    assert _session(ctx, sid)["status"] == "pending_payment"
    assert gateway.notify(forged) == 401
    assert len(gateway.deliveries) == 1 + len(gateway.retry_delays)  # retried as documented, never accepted
    assert _session(ctx, sid)["status"] == "pending_payment"


def test_a_valid_notification_for_another_amount_changes_nothing(gateway: MidtransStandIn) -> None:
    """Rule: the amount, in the notification and at the status API, must be the payment's."""
    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)
    order = f"S-{sid}-1"
    gateway.set_status(order, "settlement")
    from shared.payments.midtrans import signature

    cheaper = {"order_id": order, "status_code": "200", "gross_amount": "1000.00", "transaction_status": "settlement"}
    cheaper["signature_key"] = signature(order, "200", "1000.00", SERVER_KEY)
    resp = notify(cheaper)
    assert resp.status_code == 200 and resp.json["result"] == "amount_mismatch"

    gateway.status_override[order] = {"gross_amount": "1000.00"}
    resp = notify(gateway.set_status(order, "settlement"))
    assert resp.status_code == 200 and resp.json["result"] == "amount_mismatch"
    assert _session(ctx, sid)["status"] == "pending_payment"


def test_a_replayed_notification_changes_nothing(gateway: MidtransStandIn, clock: FakeClock) -> None:
    """Rule: a payment settles once; Midtrans's retries and replays are answered 2xx and ignored."""
    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)
    body = gateway.set_status(f"S-{sid}-1", "settlement")
    assert notify(body).json["result"] == "paid"
    first = _session(ctx, sid)
    clock.advance(60)

    again = notify(body)

    assert again.status_code == 200 and again.json["result"] == "unchanged"
    assert _session(ctx, sid) == first
    assert events(ctx, sid).count("payment_confirmed") == 1


def test_a_notification_arriving_after_expiry_changes_nothing_but_owes_a_refund(
    gateway: MidtransStandIn, clock: FakeClock
) -> None:
    """Rule: a session past its payment deadline is not revived; money taken late is owed back."""
    ctx = _ctx(gateway)
    sid, auth, _ = _accepted(gateway)
    clock.advance(ctx.settings.payment_timeout_seconds)

    assert gateway.pay(f"S-{sid}-1") == 200

    row = _session(ctx, sid)
    assert (row["status"], row["paid_at"]) == ("expired", None)
    assert _refunds(ctx, sid) == [(10_000, "paid_after_close")]
    assert gateway.pay(f"S-{sid}-1") == 200  # a repeat owes nothing more
    assert _refunds(ctx, sid) == [(10_000, "paid_after_close")]
    assert api("get", auth, sid).json["status"] == "expired"


def test_a_status_api_that_disagrees_with_the_notification_changes_nothing(gateway: MidtransStandIn) -> None:
    """Rule: the status API's answer, not the notification's claim, decides."""
    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)
    order = f"S-{sid}-1"
    body = gateway.set_status(order, "settlement")
    gateway.set_status(order, "pending")  # the gateway itself still says pending

    resp = notify(body)

    assert resp.status_code == 200 and resp.json["result"] == "ignored"
    assert _session(ctx, sid)["status"] == "pending_payment"
    assert ctx.db.scalar("SELECT status FROM payments WHERE order_id = :o", o=order) == "pending"


def test_an_expired_payment_at_the_gateway_fails_it_and_the_session_waits_for_its_deadline(
    gateway: MidtransStandIn,
) -> None:
    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)
    assert gateway.expire(f"S-{sid}-1") == 200
    assert ctx.db.scalar("SELECT status FROM payments WHERE order_id = :o", o=f"S-{sid}-1") == "failed"
    assert _session(ctx, sid)["status"] == "pending_payment"


def test_an_unpaid_extension_gives_no_time(gateway: MidtransStandIn, clock: FakeClock) -> None:
    """Rule: expires_at moves only when the extension is paid (extend 240 after paying 5 gave 245 free)."""
    ctx = _ctx(gateway)
    sid, auth, _ = _accepted(gateway, minutes=5)
    gateway.pay(f"S-{sid}-1")
    paid_until = _session(ctx, sid)["expires_at"]

    assert api("extend", auth, sid, json={"minutes": 240}).status_code == 200
    again = api("extend", auth, sid, json={"minutes": 10})
    assert again.status_code == 409 and again.json["error"]["code"] == "EXTENSION_PENDING"
    assert _session(ctx, sid)["expires_at"] == paid_until
    clock.advance(5 * 60)
    assert api("get", auth, sid).json["status"] == "ended"


def test_a_reroute_after_3_of_10_paid_minutes_gives_the_next_mitra_7(
    gateway: MidtransStandIn, clock: FakeClock
) -> None:
    """Rule: a rerouted paid session keeps the paid time it had left."""
    ctx = _ctx(gateway)
    sid, auth, _ = _accepted(gateway, minutes=10)
    gateway.pay(f"S-{sid}-1")
    clock.advance(3 * 60)
    [(_, next_auth)] = online_mitras(ctx, 1)  # online now (a heartbeat 3 minutes old would be stale)

    assert api("reroute", auth, sid).json["status"] == "searching"
    clock.advance(20)  # the search itself is not paid time lost
    resp = api("accept", next_auth, sid)

    assert resp.status_code == 200 and resp.json["status"] == "active"
    assert datetime.fromisoformat(resp.json["expires_at"]) == clock() + timedelta(minutes=7)


def test_a_mitra_ending_a_paid_session_early_owes_the_unused_time(gateway: MidtransStandIn, clock: FakeClock) -> None:
    """Rule: a session ended early through no fault of the customer records a refund due."""
    ctx = _ctx(gateway)
    sid, _, (_, mitra_auth) = _accepted(gateway, minutes=10)
    gateway.pay(f"S-{sid}-1")
    clock.advance(4 * 60)

    assert api("mitra_end", mitra_auth, sid).status_code == 200

    assert _refunds(ctx, sid) == [(6_000, "mitra_ended_early")]


def test_paying_from_the_terminal_settles_the_sessions_waiting_order(gateway: MidtransStandIn) -> None:
    """`python -m infra.pay SESSION_ID` asks the stand-in to pay; the signed notification does the rest."""
    import requests

    from tests.support.midtrans_standin import PAY_PATH

    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)

    resp = requests.post(f"{gateway.url}{PAY_PATH}{sid}", timeout=30)

    assert resp.status_code == 200 and resp.json() == {"order_id": f"S-{sid}-1", "merchant_answer": 200}
    assert _session(ctx, sid)["status"] == "active"
    assert requests.post(f"{gateway.url}{PAY_PATH}{sid}", timeout=30).status_code == 404  # nothing waits now


def test_the_expiry_sweep_applies_a_payment_whose_notification_was_lost(
    gateway: MidtransStandIn, clock: FakeClock
) -> None:
    """Rule: before unpaid sessions expire, the sweep asks the status API about payments near their deadline."""
    from shared.sweeps.jobs import session_expiry_pass

    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)
    other, _, _ = _accepted(gateway)
    gateway.set_status(f"S-{sid}-1", "settlement")  # paid at the gateway; the notification never arrives
    clock.advance(ctx.settings.payment_timeout_seconds - 30)

    result = session_expiry_pass(ctx)

    assert result["payments_reconciled"] == {"paid": 1, "ignored": 1}
    assert _session(ctx, sid)["status"] == "active"
    assert _session(ctx, other)["status"] == "pending_payment"
    clock.advance(30)
    assert session_expiry_pass(ctx)["expired_unpaid"] == 1
    assert _session(ctx, other)["status"] == "expired"


def test_notifications_and_a_staff_confirmation_at_once_settle_the_payment_once(gateway: MidtransStandIn) -> None:
    """Rule: a payment settles once, whoever races for it (Midtrans's retries, staff)."""
    import threading

    from tests.support.tokens import bearer, cc_token

    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway)
    body = gateway.set_status(f"S-{sid}-1", "settlement")
    staff = bearer(cc_token(ctx))
    barrier = threading.Barrier(5)
    answers: list[int] = []

    def run(kind: str) -> None:
        app = client("payments_midtrans_notification" if kind == "notify" else "payment_confirmed")
        barrier.wait()
        if kind == "notify":
            answers.append(app.post(NOTIFY, json=body).status_code)
        else:
            answers.append(api("pay", staff, sid, app=app).status_code)

    threads = [threading.Thread(target=run, args=(k,)) for k in ("notify",) * 4 + ("staff",)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(answers) == [200] * 5
    assert events(ctx, sid).count("payment_confirmed") == 1
    assert ctx.db.scalar("SELECT count(*) FROM payments WHERE session_id = CAST(:s AS uuid)", s=sid) == 1
    assert _session(ctx, sid)["status"] == "active"
    assert _refunds(ctx, sid) == []


def test_a_gateway_outage_keeps_the_accept_and_makes_the_notification_retry(gateway: MidtransStandIn) -> None:
    """Faults: Snap down at accept leaves a payment without a token (staff can still confirm);
    the status API down answers 502, so Midtrans retries, and nothing changes meanwhile."""
    ctx = _ctx(gateway)
    gateway.down = True
    sid, auth, _ = _accepted(gateway)
    payment = api("get", auth, sid).json["payment"]
    assert (payment["amount"], payment["token"], payment["status"]) == (10_000, None, "pending")

    gateway.down = False
    gateway.create({"transaction_details": {"order_id": f"S-{sid}-1", "gross_amount": 10_000}})
    body = gateway.set_status(f"S-{sid}-1", "settlement")
    gateway.down = True
    resp = notify(body)
    assert resp.status_code == 502 and resp.json["error"]["code"] == "PAYMENT_PROVIDER_ERROR"
    assert _session(ctx, sid)["status"] == "pending_payment"

    gateway.down = False
    assert notify(body).json["result"] == "paid"
    assert _session(ctx, sid)["status"] == "active"


def test_staff_see_the_refund_due_and_mark_it_refunded_once(gateway: MidtransStandIn, clock: FakeClock) -> None:
    from tests.support.tokens import bearer, cc_user

    ctx = _ctx(gateway)
    sid, _, (_, mitra_auth) = _accepted(gateway, minutes=10)
    gateway.pay(f"S-{sid}-1")
    clock.advance(4 * 60)
    api("mitra_end", mitra_auth, sid)
    staff_id, token = cc_user(ctx, "operator")
    staff = bearer(token)
    url = f"/internal/chat-sessions/{sid}"

    money = client("payments_of_session").get(f"{url}/payments", headers=staff).json
    assert [(p["kind"], p["status"], p["settled_by"]) for p in money["payments"]] == [
        ("session", "paid", "system:midtrans")
    ]
    [refund] = money["refunds"]
    assert (refund["amount_idr"], refund["reason"], money["refund_due_idr"]) == (6_000, "mitra_ended_early", 6_000)

    done = client("payments_refunded").post(
        f"{url}/refunded", headers=staff, json={"refund_id": refund["id"], "reason": "BCA transfer 77"}
    )
    assert done.status_code == 200 and done.json["refund_due_idr"] == 0
    assert done.json["refunds"][0]["refunded_by"] == f"cc:{staff_id}"
    again = client("payments_refunded").post(f"{url}/refunded", headers=staff, json={"refund_id": refund["id"]})
    assert again.status_code == 409 and again.json["error"]["code"] == "ALREADY_REFUNDED"
    unknown = client("payments_refunded").post(f"{url}/refunded", headers=staff, json={"refund_id": sid})
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "REFUND_NOT_FOUND"
    audit = ctx.db.rows("SELECT actor, detail FROM cc_audit_log WHERE action = 'refund.mark_refunded'")
    assert [(a["actor"], a["detail"]["reason"]) for a in audit] == [(f"cc:{staff_id}", "BCA transfer 77")]


def _pay_and_reroute_at_once(standin: MidtransStandIn) -> tuple[str, dict[str, int]]:
    import threading

    sid, auth, _ = _accepted(standin)
    online_mitras(_ctx(standin), 1)  # someone to reroute to
    body = standin.set_status(f"S-{sid}-1", "settlement")
    barrier = threading.Barrier(2)
    answers: dict[str, int] = {}

    def pay() -> None:
        app = client("payments_midtrans_notification")
        barrier.wait()
        answers["pay"] = app.post(NOTIFY, json=body).status_code

    def reroute() -> None:
        app = client("pairing_reroute")
        barrier.wait()
        answers["reroute"] = api("reroute", auth, sid, app=app).status_code

    threads = [threading.Thread(target=pay), threading.Thread(target=reroute)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sid, answers


def test_a_payment_and_a_reroute_at_once_leave_the_money_consistent(gateway: MidtransStandIn) -> None:
    """Rule: whichever wins, the customer either keeps the paid session or is owed the payment back."""
    ctx = _ctx(gateway)
    for _ in range(5):
        sid, answers = _pay_and_reroute_at_once(gateway)

        # The reroute may lose to the payment (409: the session it read as unpaid is active now).
        assert answers["pay"] == 200 and answers["reroute"] in (200, 409), answers
        row = _session(ctx, sid)
        paid = row["paid_at"] is not None
        assert row["status"] == ("active" if answers["reroute"] == 409 else "searching")
        assert _refunds(ctx, sid) == ([] if paid else [(10_000, "paid_after_close")])
