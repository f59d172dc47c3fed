"""Blocking a customer and deleting an account close their money (docs/payments.md, "Closing").

Through the Midtrans stand-in: the pending Snap transaction is cancelled at the gateway and a
notification arriving after that changes nothing; paid time not used is owed back.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from shared.context import AppContext
from tests.functions.test_payments_midtrans import NOTIFY, _accepted, _ctx, _refunds, _session, notify
from tests.functions.test_payments_midtrans import gateway as gateway  # the fixture
from tests.support.apps import client
from tests.support.helpers import FakeClock
from tests.support.midtrans_standin import MidtransStandIn
from tests.support.pairing_support import api, customer, online_mitras, used
from tests.support.tokens import bearer, cc_token


def _customer_of(ctx: AppContext, sid: str) -> str:
    return str(ctx.db.scalar("SELECT customer_id FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid))


def _block(ctx: AppContext, sid: str) -> Any:
    url = f"/internal/customers/{_customer_of(ctx, sid)}/block"
    return client("customers_block").post(url, headers=bearer(cc_token(ctx, "operator")), json={"reason": "fraud"})


def _delete(auth: dict[str, str]) -> Any:
    return client("auth_client_delete").delete("/api/client/auth/me", headers=auth)


def _payment(ctx: AppContext, order: str) -> dict[str, Any]:
    row = ctx.db.one("SELECT status, reason FROM payments WHERE order_id = :o", o=order)
    assert row is not None
    return row


def _late_settlement(standin: MidtransStandIn, order: str) -> dict[str, Any]:
    """A correctly signed `settlement` notification for `order`, while the gateway itself keeps its status."""
    kept = standin.orders[order]["transaction_status"]
    body = standin.set_status(order, "settlement")
    standin.set_status(order, kept)
    return body


def _closes_the_pending_payment(standin: MidtransStandIn, close: Any, reason: str) -> None:
    ctx = _ctx(standin)
    sid, auth, _ = _accepted(standin)
    order = f"S-{sid}-1"
    assert standin.orders[order]["transaction_status"] == "pending"

    assert close(ctx, sid, auth).status_code in (200, 204)

    assert _payment(ctx, order) == {"status": "failed", "reason": reason}
    assert standin.cancelled == [order]  # through Midtrans's cancel API, once
    assert standin.orders[order]["transaction_status"] == "cancel"  # no longer payable at the gateway
    # Midtrans notifies the cancel, and a settlement claim may still arrive late: neither changes anything.
    cancel_notice = standin.status(order)
    late = _late_settlement(standin, order)
    ended = _session(ctx, sid)
    for body in (cancel_notice, late):
        resp = notify(body)
        assert resp.status_code == 200 and resp.json["result"] == "unchanged", resp.json
    assert _payment(ctx, order) == {"status": "failed", "reason": reason}
    assert _session(ctx, sid) == ended and ended["status"] == "ended"
    assert _refunds(ctx, sid) == []  # nothing was paid


def test_blocking_a_customer_cancels_the_pending_snap_payment_and_a_late_notification_changes_nothing(
    gateway: MidtransStandIn,
) -> None:
    """Rule: nothing stays payable on a closed session, at the gateway included."""
    _closes_the_pending_payment(gateway, lambda ctx, sid, _auth: _block(ctx, sid), "customer_blocked")


def test_deleting_the_account_cancels_the_pending_snap_payment_and_a_late_notification_changes_nothing(
    gateway: MidtransStandIn,
) -> None:
    """Rule: nothing stays payable on a closed session, at the gateway included."""
    _closes_the_pending_payment(gateway, lambda _ctx, _sid, auth: _delete(auth), "account_deleted")


def test_blocking_a_customer_mid_session_owes_back_the_paid_time_not_used(
    gateway: MidtransStandIn, clock: FakeClock
) -> None:
    """Rule: paid time the customer can no longer use is recorded as a refund due."""
    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway, minutes=10)
    gateway.pay(f"S-{sid}-1")
    clock.advance(4 * 60)

    resp = _block(ctx, sid)

    assert resp.status_code == 200 and resp.json["ended_chat_sessions"] == [sid]
    assert _refunds(ctx, sid) == [(6_000, "customer_blocked")]
    assert _block(ctx, sid).status_code == 200  # a repeat owes nothing more
    assert _refunds(ctx, sid) == [(6_000, "customer_blocked")]


def test_deleting_the_account_mid_session_owes_back_the_paid_time_not_used(
    gateway: MidtransStandIn, clock: FakeClock
) -> None:
    """Rule: paid time the customer can no longer use is recorded as a refund due."""
    ctx = _ctx(gateway)
    sid, auth, _ = _accepted(gateway, minutes=10)
    gateway.pay(f"S-{sid}-1")
    clock.advance(7 * 60)

    assert _delete(auth).status_code == 204

    assert _session(ctx, sid)["status"] == "ended"
    assert _refunds(ctx, sid) == [(3_000, "account_deleted")]


def test_a_gateway_down_at_the_cancel_still_blocks_and_money_taken_anyway_is_owed_back(
    gateway: MidtransStandIn,
) -> None:
    """Rule: a payment settled after its session closed never revives it; its amount is owed back."""
    ctx = _ctx(gateway)
    sid, _, _ = _accepted(gateway, minutes=10)
    order = f"S-{sid}-1"
    gateway.down = True

    assert _block(ctx, sid).status_code == 200

    gateway.down = False
    assert gateway.orders[order]["transaction_status"] == "pending"  # the cancel never arrived
    assert gateway.pay(order) == 200  # the customer pays the still-open Snap page
    assert _payment(ctx, order) == {"status": "failed", "reason": "customer_blocked"}
    assert _session(ctx, sid)["status"] == "ended"
    assert _refunds(ctx, sid) == [(10_000, "paid_after_close")]


def _at_once(*calls: Any) -> list[Any]:
    """Run the calls truly at once (threads released together); their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_a_force_end_and_a_settlement_at_once_owe_back_exactly_what_was_paid(gateway: MidtransStandIn) -> None:
    """Rule: whichever wins, a session force-ended before any minute was used owes the whole payment back, once."""
    ctx = _ctx(gateway)
    staff = bearer(cc_token(ctx, "operator"))
    for _ in range(5):
        sid, _, _ = _accepted(gateway, minutes=10)
        body = gateway.set_status(f"S-{sid}-1", "settlement")
        end_app, notify_app = client("chat_sessions_end"), client("payments_midtrans_notification")

        ended, paid = _at_once(
            partial(end_app.post, f"/internal/chat-sessions/{sid}/end", headers=staff, json={"reason": "r"}),
            partial(notify_app.post, NOTIFY, json=body),
        )

        assert ended.status_code == 200 and paid.status_code == 200, (ended.json, paid.json)
        assert _session(ctx, sid)["status"] == "ended"
        assert sum(amount for amount, _ in _refunds(ctx, sid)) == 10_000, _refunds(ctx, sid)
        assert _payment(ctx, f"S-{sid}-1")["status"] in ("paid", "failed")


def test_a_deactivation_and_an_accept_at_once_never_leave_the_mitra_holding_a_session(
    gateway: MidtransStandIn,
) -> None:
    """Rule: a deactivated mitra never keeps a live session (the mitra row lock orders the two)."""
    ctx = _ctx(gateway)
    staff = bearer(cc_token(ctx, "operator"))
    for _ in range(5):
        [(mitra_id, mitra_auth)] = online_mitras(ctx, 1)
        _, auth = customer(ctx)
        sid = api("request", auth, json={"duration_minutes": 10}).json["id"]
        accept_app, deactivate_app = client("pairing_mitra_accept"), client("mitras_deactivate")

        accepted, deactivated = _at_once(
            partial(api, "accept", mitra_auth, sid, app=accept_app),
            partial(deactivate_app.post, f"/internal/mitras/{mitra_id}/deactivate", headers=staff),
        )

        assert deactivated.status_code == 200
        row = ctx.db.one("SELECT status, end_reason FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid)
        assert row is not None
        if accepted.status_code == 200:  # accepted first: the deactivation ended it
            assert (row["status"], row["end_reason"]) == ("ended", "mitra_deactivated")
            assert deactivated.json["ended_chat_sessions"] == [sid]
            assert _payment(ctx, f"S-{sid}-1") == {"status": "failed", "reason": "mitra_deactivated"}
        else:  # deactivated first: the accept was refused and the search goes on
            assert accepted.status_code in (401, 403), accepted.json
            assert row["status"] == "searching"
        assert used(ctx, mitra_id) == (0, 0)
        api("cancel", auth, sid)
