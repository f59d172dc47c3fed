"""Check that a sweep is called by our Cloud Scheduler job: the claims of its OIDC token.

The sweeps are private functions (no allUsers invoker; only the scheduler service account
holds the invoker role), so Cloud Run has already verified the Google-signed ID token, its
audience and the caller's role before the request reaches us, and forwards the token with
its signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`
(https://cloud.google.com/run/docs/troubleshooting#signature-removed). Verifying the
signature again would always fail, so behind IAM the function checks only the claims it
needs: the audience (SCHEDULER_AUDIENCE), the issuer, the service-account email
(SCHEDULER_SERVICE_ACCOUNT), `email_verified` and the expiry. Only a public function verifies
signatures itself (the Google and Apple sign-ins in shared/auth/identity.py).

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

from shared.auth import guard
from shared.context import AppContext
from shared.errors import Forbidden, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CLOCK_SKEW_SECONDS = 10


def _invalid(message: str = "invalid OIDC token") -> Unauthorized:
    return Unauthorized(message, code="OIDC_INVALID")


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (Cloud Run verified it and removed the signature)."""
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


def check_scheduler_claims(ctx: AppContext, token: str, *, now: float | None = None) -> dict[str, Any]:
    """Return the claims of the forwarded Scheduler token, or raise 401/403 (503 if unconfigured)."""
    settings = ctx.settings
    if not settings.scheduler_audience or not settings.scheduler_service_account:
        raise ServiceUnavailable("sweep caller verification is not configured", code="SWEEP_AUTH_NOT_CONFIGURED")
    claims = _claims(token)
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    if settings.scheduler_audience not in audiences:
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


def authenticate(ctx: AppContext, req: Any, kind: str) -> dict[str, Any]:
    """shared.http's hook for `auth = "scheduler"` routes."""
    if ctx.settings.sweep_auth == "none":
        log.warning("SWEEP_AUTH=none: sweep caller NOT verified (development only)")
        return {"email": "unverified-local-caller"}
    return check_scheduler_claims(ctx, guard.bearer_token(req))
