"""Midtrans's documented rules, as the adapter applies them (shared/payments/midtrans.py)."""

from __future__ import annotations

import hashlib

import pytest

from shared.payments.midtrans import MidtransSnap, outcome_of, signature, whole_idr

KEY = "SB-Mid-server-unit"


@pytest.mark.parametrize(
    ("transaction_status", "fraud_status", "outcome"),
    [
        ("settlement", None, "paid"),
        ("capture", "accept", "paid"),
        ("capture", "challenge", None),
        ("capture", "deny", None),
        ("pending", None, None),
        ("expire", None, "failed"),
        ("cancel", None, "failed"),
        ("deny", None, "failed"),
        ("refund", None, None),
        (None, None, None),
    ],
)
def test_statuses_map_to_paid_failed_or_nothing(transaction_status: str, fraud_status: str, outcome: str) -> None:
    assert outcome_of(transaction_status, fraud_status) == outcome


def test_the_signature_is_sha512_of_order_status_amount_and_key_appended() -> None:
    expected = hashlib.sha512(b"1111" + b"200" + b"100000.00" + KEY.encode()).hexdigest()
    assert signature("1111", "200", "100000.00", KEY) == expected


def test_a_notification_verifies_only_with_every_signed_field_unchanged() -> None:
    snap = MidtransSnap(KEY, "http://127.0.0.1:9", "http://127.0.0.1:9", 1.0)
    body = {"order_id": "S-1", "status_code": "200", "gross_amount": "10000.00"}
    body["signature_key"] = signature("S-1", "200", "10000.00", KEY)
    assert snap.verify_notification(body)
    assert snap.verify_notification({**body, "signature_key": body["signature_key"].upper()})
    for field, value in (("order_id", "S-2"), ("status_code", "201"), ("gross_amount", "1.00")):
        assert not snap.verify_notification({**body, field: value}), field
    assert not snap.verify_notification({**body, "signature_key": signature("S-1", "200", "10000.00", "other")})
    assert not snap.verify_notification({k: v for k, v in body.items() if k != "signature_key"})
    assert not snap.verify_notification({**body, "gross_amount": 10000})


@pytest.mark.parametrize(
    ("raw", "amount"), [("30000.00", 30000), ("30000", 30000), (30000, 30000), ("30000.50", None), ("x", None)]
)
def test_amounts_are_whole_idr(raw: object, amount: int | None) -> None:
    assert whole_idr(raw) == amount


def test_cancel_voids_a_pending_order_only_and_an_outage_is_a_provider_error() -> None:
    """Midtrans's cancel (https://docs.midtrans.com/reference/cancel-api-1) through the loopback stand-in."""
    from datetime import UTC, datetime, timedelta

    from shared.payments.provider import PaymentProviderError
    from tests.support.midtrans_standin import MidtransStandIn

    with MidtransStandIn(KEY) as standin:
        snap = MidtransSnap(KEY, standin.url, standin.url, 2.0)
        now = datetime.now(UTC)
        for order in ("S-pending-1", "S-settled-1"):
            snap.create(order, 10_000, now + timedelta(minutes=10), now)
        standin.set_status("S-settled-1", "settlement")

        assert snap.cancel("S-pending-1") is True
        assert snap.status("S-pending-1").outcome == "failed"  # cancel is a final failure
        assert snap.cancel("S-settled-1") is False  # settled: a refund, not a cancel
        assert snap.status("S-settled-1").outcome == "paid"
        assert snap.cancel("S-unknown-1") is False  # no payment method chosen yet: nothing to void
        standin.down = True
        with pytest.raises(PaymentProviderError):
            snap.cancel("S-pending-1")
