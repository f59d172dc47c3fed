"""Sign in with Apple around the customer account: the sign-in with its code exchange, keeping
Apple's refresh token (shared.auth.apple_tokens) in the transaction that signs the customer in."""

from __future__ import annotations

from typing import Any

from shared.auth import apple, apple_tokens, customers, identity, nonces
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Tx


def sign_in(
    ctx: AppContext,
    *,
    id_token: str,
    raw_nonce: str | None,
    code: str,
    name: str | None,
    bearer: Principal | None,
    binding: str,
    user_agent: str | None,
) -> dict[str, Any]:
    """Verify the token and its nonce, exchange the code, then sign in or link, keeping Apple's token.

    The exchange runs before the transaction (no lock is held across a call to Apple).
    """
    apple.require_configured(ctx)
    verified = identity.verify_apple(ctx, id_token, raw_nonce)
    nonces.consume(ctx, raw_nonce, binding)
    grant = apple.exchange_code(ctx, code, verified.audience or "", verified.subject)
    sealed = apple.seal(ctx, grant.client_id, grant.refresh_token)

    def keep(tx: Tx, customer_id: str) -> None:
        apple_tokens.keep(tx, customer_id, grant.client_id, sealed)

    return customers.sign_in_with_identity(ctx, verified, bearer, user_agent, keep=keep, name=name)
