"""Google and Apple id_token verification (the identity-provider adapters).

Google: google-auth's `id_token.verify_token` against GOOGLE_CERTS_URL with the audience in
GOOGLE_OAUTH_CLIENT_IDS, issuer checked. Apple: pyjwt with Apple's JWKS (APPLE_JWKS_URL,
keys cached for an hour), RS256 pinned, issuer and audience (APPLE_SERVICES_ID or one of
APPLE_BUNDLE_IDS) checked; when the app sends its raw nonce, the token's `nonce` claim must
equal sha256(raw nonce) in hex, as Sign in with Apple defines it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from shared.context import AppContext
from shared.errors import BadGateway, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")


@dataclass(frozen=True)
class Identity:
    """A verified external identity."""

    provider: str  # "google" | "apple"
    subject: str
    email: str | None
    name: str | None = None


def _invalid(provider: str) -> Unauthorized:
    return Unauthorized(f"the {provider} id_token is not valid", code="ID_TOKEN_INVALID")


def _provider_down(provider: str) -> BadGateway:
    return BadGateway(f"could not fetch {provider}'s signing keys", code="IDENTITY_PROVIDER_ERROR")


def verify_google(ctx: AppContext, token: str) -> Identity:
    """Verify a Google id_token; 401 ID_TOKEN_INVALID, 502 when Google's keys cannot be fetched."""
    from google.auth import exceptions as google_exceptions
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token as google_id_token

    audiences = list(ctx.settings.google_oauth_client_ids)
    if not audiences:
        raise ServiceUnavailable("Google sign-in is not configured", code="PROVIDER_NOT_CONFIGURED")
    request = ctx.singleton("google.request", lambda: google_requests.Request(session=requests.Session()))
    try:
        claims: Mapping[str, Any] = google_id_token.verify_token(
            token, request, audience=audiences, certs_url=ctx.settings.google_certs_url
        )
    except google_exceptions.TransportError as exc:
        log.warning("google certs fetch failed", extra={"error": type(exc).__name__})
        raise _provider_down("Google") from None
    except (ValueError, google_exceptions.GoogleAuthError):
        raise _invalid("Google") from None
    if claims.get("iss") not in GOOGLE_ISSUERS or not claims.get("sub"):
        raise _invalid("Google")
    email = claims.get("email") if claims.get("email_verified") in (True, "true") else None
    return Identity("google", str(claims["sub"]), email, claims.get("name"))


def nonce_hash(raw_nonce: str) -> str:
    """What Apple puts in the `nonce` claim for the app's raw nonce."""
    return hashlib.sha256(raw_nonce.encode()).hexdigest()


def verify_apple(ctx: AppContext, token: str, raw_nonce: str | None) -> Identity:
    """Verify an Apple id_token; 401 ID_TOKEN_INVALID, 502 when Apple's JWKS cannot be fetched."""
    s = ctx.settings
    audiences = [a for a in (s.apple_services_id, *s.apple_bundle_ids) if a]
    if not audiences:
        raise ServiceUnavailable("Sign in with Apple is not configured", code="PROVIDER_NOT_CONFIGURED")
    jwks: jwt.PyJWKClient = ctx.singleton(
        "apple.jwks", lambda: jwt.PyJWKClient(s.apple_jwks_url, cache_keys=True, lifespan=3600, timeout=5)
    )
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audiences,
            issuer=s.apple_issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWKClientConnectionError as exc:
        log.warning("apple jwks fetch failed", extra={"error": type(exc).__name__})
        raise _provider_down("Apple") from None
    except jwt.PyJWTError:
        raise _invalid("Apple") from None
    if raw_nonce is not None:
        claimed = str(claims.get("nonce") or "")
        if not hmac.compare_digest(claimed.encode(), nonce_hash(raw_nonce).encode()):
            raise Unauthorized("the Apple id_token nonce does not match", code="NONCE_MISMATCH")
    email = claims.get("email") if claims.get("email_verified") in (True, "true") else None
    return Identity("apple", str(claims["sub"]), email)
