"""Payment providers, behind one interface (`PaymentProvider`), like the SMS and push providers.

- `manual` (the default in development and tests): no gateway; staff confirm a payment with
  POST /internal/chat-sessions/{id}/payment-confirmed (who and why are recorded and audited).
  `create` returns no token and no URL; `status` knows nothing, so it never settles anything.
- `midtrans`: Midtrans Snap over HTTPS (shared/payments/midtrans.py).

shared/payments/gateway.py picks the configured one (PAYMENT_PROVIDER).

A provider answers three questions: create a payment (order id, amount, deadline) and return
what the customer's app opens; verify a notification's signature; read an order's status.
It also cancels a payment we no longer want paid (the session closed before it was paid).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.errors import BadGateway


class PaymentProviderError(BadGateway):
    """Raised when the payment gateway could not be reached or refused the request."""

    code = "PAYMENT_PROVIDER_ERROR"
    default_message = "the payment provider did not answer, try again"


@dataclass(frozen=True)
class Created:
    """What the customer's app needs to pay: a Snap token and the page to open (None when manual)."""

    token: str | None
    redirect_url: str | None


@dataclass(frozen=True)
class Status:
    """An order's status as the provider reports it, mapped to ours.

    outcome: "paid", "failed" or None (nothing to do yet: pending, or unknown to the provider).
    gross_amount: the amount the provider holds for the order, in whole IDR (None if unknown).
    """

    outcome: str | None
    gross_amount: int | None
    raw_status: str | None


class PaymentProvider(Protocol):
    name: str

    def create(self, order_id: str, amount_idr: int, deadline: datetime, now: datetime) -> Created:
        """Ask the provider for a payment of `amount_idr` that can be paid until `deadline`."""
        ...

    def verify_notification(self, body: dict[str, Any]) -> bool:
        """True when the notification is signed by the provider (compared in constant time)."""
        ...

    def status(self, order_id: str) -> Status:
        """The provider's current status of `order_id` (its own answer, never the notification's)."""
        ...

    def cancel(self, order_id: str) -> bool:
        """Make `order_id` no longer payable; False when the provider would not cancel it (unknown, settled)."""
        ...


class ManualProvider:
    """Staff confirm payments by hand; nothing is created at or read from a gateway."""

    name = "manual"

    def create(self, order_id: str, amount_idr: int, deadline: datetime, now: datetime) -> Created:
        return Created(token=None, redirect_url=None)

    def verify_notification(self, body: dict[str, Any]) -> bool:
        return False  # no gateway sends notifications to a manual deployment

    def status(self, order_id: str) -> Status:
        return Status(outcome=None, gross_amount=None, raw_status=None)

    def cancel(self, order_id: str) -> bool:
        return True  # nothing is payable anywhere but through staff, and a closed payment is refused there
