"""Check that a sweep is called by our Cloud Scheduler job: the identity Cloud Run verified.

The sweeps are private functions (no allUsers invoker; only the scheduler service account
holds the invoker role of its own binding), so Cloud Run checks a Google-signed ID token, its
audience and the caller's role before the request reaches us. Which header it checks matters:
a caller may send its token in `X-Serverless-Authorization` or in `Authorization`. When
`X-Serverless-Authorization` is present, Cloud Run checks that one, forwards it with its
signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`, and passes `Authorization` through
untouched, so `Authorization` then holds whatever the caller wrote
(https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token,
https://cloud.google.com/run/docs/troubleshooting#signature-removed). Anyone holding
run.invoker on the project (owners, editors, often the default compute account) can pass IAM
that way with a token of their own and a forged one beside it. So:

- the identity is read from `X-Serverless-Authorization` when present, else `Authorization`;
- a token whose signature is not `SIGNATURE_REMOVED_BY_GOOGLE` (Cloud Run did not vouch for
  it) has its signature verified against Google's certs (GOOGLE_CERTS_URL);
- a request whose two headers name different identities is refused (403
  OIDC_IDENTITY_MISMATCH), as is one whose second header is not a token at all;
- then the claims: the audience equal to SCHEDULER_AUDIENCE (exactly, never a substring), the
  issuer, the service-account email (SCHEDULER_SERVICE_ACCOUNT), `email_verified`, the expiry.

The deploy never makes a sweep public (`--no-allow-unauthenticated`, and it refuses a sweep
whose auth kind is not "scheduler"). Local development may set SWEEP_AUTH=none, which config
accepts only together with ENABLE_TEST_ENDPOINTS=1, and which logs a warning on every call.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from typing import Any

import requests

from shared.auth.identity import CachingRequest
from shared.context import AppContext
from shared.errors import Forbidden, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CLOCK_SKEW_SECONDS = 10
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
SERVERLESS_HEADER = "X-Serverless-Authorization"


def _invalid(message: str = "invalid OIDC token") -> Unauthorized:
    return Unauthorized(message, code="OIDC_INVALID")


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid()
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise _invalid() from None
    if not isinstance(claims, dict):
        raise _invalid()
    return claims


def _verify_signature(ctx: AppContext, token: str) -> None:
    """Verify a token Cloud Run did not vouch for against Google's certs; 401, or 503 if unreachable."""
    from google.auth import exceptions as google_exceptions
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token as google_id_token

    request = ctx.singleton(
        "google.request", lambda: CachingRequest(google_requests.Request(session=requests.Session()), ctx.now)
    )
    try:
        # Only the signature (and the token's own times) here; the claims follow with our rules.
        google_id_token.verify_token(
            token, request, certs_url=ctx.settings.google_certs_url, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except google_exceptions.TransportError as exc:
        log.warning("google certs fetch failed", extra={"error": type(exc).__name__})
        raise ServiceUnavailable("could not fetch Google's signing keys", code="OIDC_KEYS_UNAVAILABLE") from None
    except (ValueError, google_exceptions.GoogleAuthError):
        raise _invalid("OIDC token signature does not verify") from None


def check_scheduler_claims(ctx: AppContext, token: str, *, now: float | None = None) -> dict[str, Any]:
    """Return the claims of the Scheduler's token, or raise 401/403 (503 if unconfigured)."""
    settings = ctx.settings
    if not settings.scheduler_audience or not settings.scheduler_service_account:
        raise ServiceUnavailable("sweep caller verification is not configured", code="SWEEP_AUTH_NOT_CONFIGURED")
    claims = _claims(token)
    if token.rsplit(".", 1)[-1] != SIGNATURE_REMOVED:
        _verify_signature(ctx, token)
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    if not any(isinstance(a, str) and a == settings.scheduler_audience for a in audiences):
        raise _invalid("OIDC token is for another audience")
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise _invalid("OIDC token not issued by Google")
    current = time.time() if now is None else now
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float) or expiry + CLOCK_SKEW_SECONDS < current:
        raise _invalid("OIDC token expired")
    email = str(claims.get("email", ""))
    if not hmac.compare_digest(email.encode(), settings.scheduler_service_account.encode()):
        raise Forbidden("caller is not the scheduler service account", code="OIDC_WRONG_CALLER")
    if claims.get("email_verified") is not True:
        raise Forbidden("caller email is not verified", code="OIDC_WRONG_CALLER")
    return claims


def _bearer(value: str | None) -> str:
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token", code="UNAUTHORIZED")
    return token.strip()


def check_caller(ctx: AppContext, serverless: str | None, authorization: str | None) -> dict[str, Any]:
    """Claims of the identity Cloud Run verified, given the two header values (None if absent)."""
    verified = _bearer(serverless if serverless is not None else authorization)
    claims = check_scheduler_claims(ctx, verified)
    if serverless is not None and authorization is not None:
        try:
            other = _claims(_bearer(authorization))
        except Unauthorized:
            other = {}
        if not hmac.compare_digest(str(other.get("email", "")).encode(), str(claims.get("email", "")).encode()):
            raise Forbidden("the two authorization headers name different callers", code="OIDC_IDENTITY_MISMATCH")
    return claims


def authenticate(ctx: AppContext, req: Any, kind: str) -> dict[str, Any]:
    """shared.http's hook for `auth = "scheduler"` routes."""
    if ctx.settings.sweep_auth == "none":
        log.warning("SWEEP_AUTH=none: sweep caller NOT verified (development only)")
        return {"email": "unverified-local-caller"}
    return check_caller(ctx, req.header(SERVERLESS_HEADER), req.header("Authorization"))
