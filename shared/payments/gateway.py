"""The configured payment provider (PAYMENT_PROVIDER): manual or Midtrans Snap (docs/payments.md).

Apart from the interface (shared/payments/provider.py) so the Midtrans adapter can import the
interface's types without a cycle.
"""

from __future__ import annotations

from shared.context import AppContext
from shared.errors import ConfigError
from shared.payments.midtrans import MidtransSnap
from shared.payments.provider import ManualProvider, PaymentProvider


def provider(ctx: AppContext) -> PaymentProvider:
    """The configured provider (PAYMENT_PROVIDER), built once per context."""
    name = ctx.settings.payment_provider
    if name == "manual":
        return ctx.singleton("payments", ManualProvider)  # type: ignore[no-any-return]
    if name == "midtrans":
        s = ctx.settings
        if not s.midtrans_server_key:
            raise ConfigError("PAYMENT_PROVIDER=midtrans needs MIDTRANS_SERVER_KEY")
        return ctx.singleton("payments", lambda: MidtransSnap.from_settings(s))  # type: ignore[no-any-return]
    raise ConfigError(f"PAYMENT_PROVIDER must be 'manual' or 'midtrans', got {name!r}")
