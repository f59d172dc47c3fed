"""Google and Apple id_token verification (the identity-provider adapters).

Google: google-auth's `id_token.verify_token` against GOOGLE_CERTS_URL with the audience in
GOOGLE_OAUTH_CLIENT_IDS, issuer checked; the certs response is cached for as long as its
Cache-Control allows (Google's own guidance: "cache the certificates ... use the max-age in
the Cache-Control header", https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken).
Apple: pyjwt with Apple's JWKS (APPLE_JWKS_URL,
keys cached for an hour), RS256 pinned, issuer and audience (APPLE_SERVICES_ID or one of
APPLE_BUNDLE_IDS) checked; when the app sends its raw nonce, the token's `nonce` claim must
equal sha256(raw nonce) in hex, as Sign in with Apple defines it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import requests

from shared import app_config, ratelimit
from shared.context import AppContext
from shared.errors import BadGateway, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
HOUR = 3600
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


def count_sign_in(ctx: AppContext, client_ip: str) -> None:
    """Count a Google/Apple sign-in attempt for the caller's IP (429 past the hourly limit).

    Counted before the token is even parsed: every attempt costs the IP, garbage included.
    """
    limit = int(app_config.get(ctx, "identity_signins_per_ip_per_hour"))
    ratelimit.hit(ctx, ratelimit.Limit("identity_ip", limit, HOUR), ratelimit.client_network(client_ip))


def _require_jwt_shape(token: str, provider: str) -> None:
    """Three base64url segments whose header is a JSON object naming `alg` and `kid`; else 401.

    Checked before any key fetch, so a garbage token costs no request to the provider.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise _invalid(provider)
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (binascii.Error, ValueError):
        raise _invalid(provider) from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str) or not isinstance(header.get("kid"), str):
        raise _invalid(provider)


class CachingRequest:
    """A google-auth transport that serves GETs from memory while their Cache-Control allows.

    Only 200 responses with a positive `max-age` (less their `Age`) and without `no-store` /
    `no-cache` are kept; the clock is the context's. Thread-safe; one per instance.
    """

    def __init__(self, inner: Callable[..., Any], now: Callable[[], datetime]) -> None:
        self._inner = inner
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[datetime, Any]] = {}

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        if method != "GET":
            return self._inner(url, method=method, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
        if hit is not None and self._now() < hit[0]:
            return hit[1]
        response = self._inner(url, method=method, **kwargs)
        lifetime = _cache_lifetime(response)
        if lifetime > 0:
            with self._lock:
                self._cache[url] = (self._now() + timedelta(seconds=lifetime), response)
        return response


def _cache_lifetime(response: Any) -> int:
    """Seconds a response may be reused: max-age minus Age; 0 when it must not be cached."""
    if getattr(response, "status", None) != 200:
        return 0
    headers = {str(k).lower(): str(v) for k, v in dict(getattr(response, "headers", {}) or {}).items()}
    control = headers.get("cache-control", "").lower()
    if "no-store" in control or "no-cache" in control:
        return 0
    match = _MAX_AGE.search(control)
    if match is None:
        return 0
    age = int(headers["age"]) if headers.get("age", "").isdigit() else 0
    return int(match.group(1)) - age


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
    _require_jwt_shape(token, "Google")
    from google.auth import exceptions as google_exceptions
    from google.auth.transport import requests as google_requests
    from google.oauth2 import id_token as google_id_token

    audiences = list(ctx.settings.google_oauth_client_ids)
    if not audiences:
        raise ServiceUnavailable("Google sign-in is not configured", code="PROVIDER_NOT_CONFIGURED")
    request = ctx.singleton(
        "google.request", lambda: CachingRequest(google_requests.Request(session=requests.Session()), ctx.now)
    )
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
    _require_jwt_shape(token, "Apple")
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
