"""Midtrans Snap over HTTPS with `requests` (no SDK).

Why no SDK: Midtrans's official Python client (midtransclient) wraps the same three HTTP calls
used here, pins its own `requests` use without timeouts we control, and is thinly maintained;
the three calls are small, documented, and easier to read, time out and test here directly.

The calls, from Midtrans's public documentation:
- Create a Snap transaction: POST {snap}/snap/v1/transactions with Basic auth (server key as
  user, empty password) -> 201 {token, redirect_url}
  (https://docs.midtrans.com/reference/backend-integration,
  https://docs.midtrans.com/docs/snap-snap-integration-guide). `order_id` is at most 50
  characters of letters, digits, `-`, `_`, `~`, `.` and used once per merchant
  (https://docs.midtrans.com/reference/json-objects). The payment expires with our deadline:
  the `expiry` object {start_time "yyyy-MM-dd HH:mm:ss Z", unit, duration} (same page).
- HTTP notification: JSON POSTed to the merchant, signed with
  signature_key = SHA512(order_id + status_code + gross_amount + server key), hex
  (https://docs.midtrans.com/docs/https-notification-webhooks,
  https://docs.midtrans.com/reference/handle-async-payment).
- Status: GET {api}/v2/{order_id}/status with the same Basic auth
  (https://docs.midtrans.com/docs/get-status-api-requests). Statuses and their meaning:
  https://docs.midtrans.com/docs/transaction-status-cycle — settlement, or capture with
  fraud_status accept, is a successful payment; expire, cancel and deny are final failures;
  pending waits.
- Cancel: POST {api}/v2/{order_id}/cancel with the same Basic auth voids a transaction that is
  not settled, a `pending` one included, in Core API and Snap integrations alike; it answers
  status_code "200" and the order's status becomes `cancel` (notified like any other change)
  (https://docs.midtrans.com/reference/cancel-api-1,
  https://docs.midtrans.com/reference-link/cancel-transaction-card). An order Midtrans does not
  know yet (a Snap page where no payment method was chosen) answers status_code "404": that
  page stays payable until its expiry, which is our payment deadline.

Sandbox or production is one setting (MIDTRANS_PRODUCTION); the base URLs can be pointed at
the loopback stand-in (tests/support/midtrans_standin.py) in development and tests.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from shared import oplog
from shared.config import Settings
from shared.payments.provider import Created, PaymentProviderError, Status

SANDBOX = ("https://app.sandbox.midtrans.com", "https://api.sandbox.midtrans.com")
PRODUCTION = ("https://app.midtrans.com", "https://api.midtrans.com")
_JAKARTA = timezone(timedelta(hours=7))  # Midtrans reads times as GMT+7


def signature(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """Midtrans's notification signature: hex SHA512 of the four strings appended."""
    return hashlib.sha512(f"{order_id}{status_code}{gross_amount}{server_key}".encode()).hexdigest()


def outcome_of(transaction_status: str | None, fraud_status: str | None) -> str | None:
    """Map a Midtrans status to ours: paid, failed, or None (nothing to do)."""
    if transaction_status == "settlement":
        return "paid"
    if transaction_status == "capture":
        return "paid" if fraud_status == "accept" else None  # challenge: wait for the final status
    if transaction_status in ("expire", "cancel", "deny"):
        return "failed"
    return None  # pending, or anything we do not act on (refund, chargeback...)


def whole_idr(value: Any) -> int | None:
    """ "30000.00" -> 30000; None for anything that is not a whole amount."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount != amount.to_integral_value():
        return None
    return int(amount)


class MidtransSnap:
    """Snap create, notification signature and status API, over one pooled requests session."""

    name = "midtrans"

    def __init__(self, server_key: str, snap_url: str, api_url: str, timeout: float) -> None:
        self._key = server_key
        self._snap = snap_url.rstrip("/")
        self._api = api_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = (server_key, "")
        self._session.headers.update({"Accept": "application/json"})

    @classmethod
    def from_settings(cls, s: Settings) -> MidtransSnap:
        snap, api = PRODUCTION if s.midtrans_production else SANDBOX
        return cls(
            s.midtrans_server_key or "",
            s.midtrans_snap_url or snap,
            s.midtrans_api_url or api,
            s.midtrans_timeout_seconds,
        )

    def create(self, order_id: str, amount_idr: int, deadline: datetime, now: datetime) -> Created:
        # Whole minutes, rounded down (at least one): the gateway stops taking the payment at our
        # deadline, or within a minute after it when less than one is left (then it is owed back).
        minutes = max(1, int((deadline - now).total_seconds() // 60))
        body = {
            "transaction_details": {"order_id": order_id, "gross_amount": amount_idr},
            "expiry": {
                "start_time": now.astimezone(_JAKARTA).strftime("%Y-%m-%d %H:%M:%S %z"),
                "unit": "minute",
                "duration": minutes,
            },
        }
        payload = self._call("POST", f"{self._snap}/snap/v1/transactions", body, "create")
        token, url = payload.get("token"), payload.get("redirect_url")
        if not isinstance(token, str) or not isinstance(url, str):
            oplog.emit("payments.failed", provider=self.name, reason="create_without_token")
            raise PaymentProviderError()
        return Created(token=token, redirect_url=url)

    def verify_notification(self, body: dict[str, Any]) -> bool:
        given = body.get("signature_key")
        parts = [body.get(k) for k in ("order_id", "status_code", "gross_amount")]
        if not isinstance(given, str) or not all(isinstance(p, str) for p in parts):
            return False
        expected = signature(str(parts[0]), str(parts[1]), str(parts[2]), self._key)
        return hmac.compare_digest(expected.encode(), given.lower().encode())

    def status(self, order_id: str) -> Status:
        payload = self._call("GET", f"{self._api}/v2/{order_id}/status", None, "status")
        if str(payload.get("status_code")) == "404":  # Midtrans knows no such order (yet)
            return Status(outcome=None, gross_amount=None, raw_status=None)
        raw = payload.get("transaction_status")
        return Status(
            outcome=outcome_of(raw, payload.get("fraud_status")),
            gross_amount=whole_idr(payload.get("gross_amount")),
            raw_status=raw if isinstance(raw, str) else None,
        )

    def cancel(self, order_id: str) -> bool:
        payload = self._call("POST", f"{self._api}/v2/{order_id}/cancel", None, "cancel")
        return str(payload.get("status_code")) == "200"

    def _call(self, method: str, url: str, body: dict[str, Any] | None, what: str) -> dict[str, Any]:
        try:
            resp = self._session.request(method, url, json=body, timeout=self._timeout)
        except requests.RequestException as exc:
            oplog.emit("payments.failed", provider=self.name, reason=f"{what}_{type(exc).__name__}")
            raise PaymentProviderError() from exc
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if resp.status_code >= 500 or not isinstance(payload, dict) or (what == "create" and resp.status_code != 201):
            oplog.emit("payments.failed", provider=self.name, reason=f"{what}_{resp.status_code}")
            raise PaymentProviderError()
        return payload
