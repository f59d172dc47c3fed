"""Server-issued, single-use sign-in nonces (Sign in with Apple's replay protection).

The app asks `POST /api/shared/auth/nonce` before it starts Apple's (or Google's) sign-in,
passes the nonce (Apple: its SHA-256 in hex) to the provider, and sends the raw nonce back
with the id_token. Apple describes the nonce as what ties an id_token to a session the app
server started (https://developer.apple.com/documentation/sign_in_with_apple/sign_in_with_apple_rest_api/authenticating_users_with_sign_in_with_apple).

- 32 random bytes, base64url; Valkey keeps only its SHA-256 (`<prefix>nonce:{<digest>}`),
  with a TTL of NONCE_TTL_SECONDS and the value it is bound to: the caller's anonymous (or
  any customer) session when the request carried a bearer, else the caller's IP.
- `consume` takes it with GETDEL: one atomic read-and-delete, so two sign-ins racing with the
  same nonce cannot both get it. A missing, used, expired or wrongly bound nonce is 401
  NONCE_INVALID; the burnt nonce cannot be retried.
- Valkey down: no nonce is issued or accepted, 503 NONCE_STORE_UNAVAILABLE (fail closed: a
  replay must never pass because the store of used nonces is unreachable). Apple sign-in waits
  for Valkey; anonymous, OTP and Google sign-in without a nonce do not need it (docs/auth.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from shared.context import AppContext
from shared.errors import ServiceUnavailable, Unauthorized
from shared.valkey import VALKEY_ERRORS

NONCE_TTL_SECONDS = 300  # Apple's sheet and a slow network fit; a stolen nonce dies soon after


def binding(client_ip: str, session_id: str | None) -> str:
    """What a nonce is bound to: the bearer's session when there is one, else the caller's IP."""
    return f"sid:{session_id}" if session_id else f"ip:{client_ip}"


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("sign-in nonces are unavailable, try again shortly", code="NONCE_STORE_UNAVAILABLE")


def invalid() -> Unauthorized:
    return Unauthorized("the nonce is missing, used, expired or not this caller's", code="NONCE_INVALID")


def issue(ctx: AppContext, bound_to: str) -> dict[str, object]:
    """Store a fresh nonce bound to `bound_to`; return it with its lifetime."""
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    try:
        ctx.valkey.set(ctx.keys.sign_in_nonce(_digest(nonce)), bound_to, ex=NONCE_TTL_SECONDS)
    except VALKEY_ERRORS:
        raise _unavailable() from None
    return {"nonce": nonce, "expires_in": NONCE_TTL_SECONDS}


def consume(ctx: AppContext, nonce: str | None, bound_to: str) -> None:
    """Take a nonce once; 401 NONCE_INVALID unless it was issued to `bound_to` and is still live."""
    if not nonce:
        raise invalid()
    try:
        stored = ctx.valkey.execute_command("GETDEL", ctx.keys.sign_in_nonce(_digest(nonce)))
    except VALKEY_ERRORS:
        raise _unavailable() from None
    held = stored.decode() if isinstance(stored, bytes) else str(stored or "")
    if stored is None or not hmac.compare_digest(held.encode(), bound_to.encode()):
        raise invalid()
