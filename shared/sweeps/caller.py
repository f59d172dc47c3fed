"""Verify that a sweep is called by our Cloud Scheduler job (Google-signed OIDC id_token).

The token's signature is checked against Google's certs with google-auth, then the audience
(SCHEDULER_AUDIENCE), the issuer, the service-account email (SCHEDULER_SERVICE_ACCOUNT) and
`email_verified`. Local development may set SWEEP_AUTH=none, which config accepts only
together with ENABLE_TEST_ENDPOINTS=1, and which logs a warning on every call: never silent.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import id_token

from shared.context import AppContext
from shared.errors import Forbidden, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


def _transport(ctx: AppContext) -> google.auth.transport.requests.Request:
    session: requests.Session = ctx.singleton("oidc-session", requests.Session)
    return google.auth.transport.requests.Request(session)


def verify_scheduler_token(ctx: AppContext, token: str) -> dict[str, Any]:
    """Return the verified claims of a Scheduler OIDC token, or raise 401/403."""
    settings = ctx.settings
    if not settings.scheduler_audience or not settings.scheduler_service_account:
        raise ServiceUnavailable("sweep caller verification is not configured", code="SWEEP_AUTH_NOT_CONFIGURED")
    try:
        claims = dict(
            id_token.verify_token(
                token,
                _transport(ctx),
                audience=settings.scheduler_audience,
                certs_url=settings.google_certs_url,
                clock_skew_in_seconds=10,
            )
        )
    except google.auth.exceptions.TransportError:
        raise ServiceUnavailable("could not fetch Google's certificates", code="OIDC_CERTS_UNAVAILABLE") from None
    except (ValueError, google.auth.exceptions.GoogleAuthError):
        raise Unauthorized("invalid OIDC token", code="OIDC_INVALID") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthorized("OIDC token not issued by Google", code="OIDC_INVALID")
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
    header = req.header("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing OIDC bearer token", code="UNAUTHORIZED")
    return verify_scheduler_token(ctx, token.strip())
