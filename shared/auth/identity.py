"""Google and Apple id_token verification (the identity-provider adapters).

Google: google-auth's `id_token.verify_token` against GOOGLE_CERTS_URL with the audience in
GOOGLE_OAUTH_CLIENT_IDS, issuer checked; the certs response is cached for as long as its
Cache-Control allows (Google's own guidance: "cache the certificates ... use the max-age in
the Cache-Control header", https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken).
Certs fetches give up after 3 s and fall back to the last good certs for a bounded time.
Apple: pyjwt with Apple's JWKS (APPLE_JWKS_URL, the set cached for an hour, no key beyond it),
RS256 pinned, issuer and audience (APPLE_SERVICES_ID or one of
APPLE_BUNDLE_IDS) checked; the app must send its raw nonce (a server nonce, shared.auth.nonces)
and the token's `nonce` claim must equal sha256(raw nonce) in hex, as Sign in with Apple defines it.
Both allow CLOCK_SKEW_SECONDS of skew; every failure is 401, 502 or 503 (docs/auth.md).
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
from shared.auth import nonces
from shared.context import AppContext
from shared.errors import BadGateway, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
HOUR = 3600
CERTS_TIMEOUT_SECONDS = 3  # google-auth's default is 120 s: a hung fetch must not hold the request
CERTS_STALE_SECONDS = 6 * HOUR  # how long past expiry the last good certs serve while the fetch fails
CLOCK_SKEW_SECONDS = 30  # iat/exp tolerance for the providers' clocks against ours
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
    `no-cache` are kept; the clock is the context's. A fetch gives up after
    CERTS_TIMEOUT_SECONDS; when it fails (no answer, or not 200), the last good response is
    served for up to CERTS_STALE_SECONDS past its expiry (Google rotates keys days apart, so
    yesterday's certs still verify today's tokens), then the failure shows. Thread-safe; one
    per instance.
    """

    def __init__(self, inner: Callable[..., Any], now: Callable[[], datetime]) -> None:
        self._inner = inner
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[datetime, Any]] = {}

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", CERTS_TIMEOUT_SECONDS)
        if method != "GET":
            return self._inner(url, method=method, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
        if hit is not None and self._now() < hit[0]:
            return hit[1]
        try:
            response = self._inner(url, method=method, **kwargs)
        except Exception:
            if self._stale_usable(hit):
                return self._stale(hit)
            raise
        if getattr(response, "status", None) != 200 and self._stale_usable(hit):
            return self._stale(hit)
        lifetime = _cache_lifetime(response)
        if lifetime > 0:
            with self._lock:
                self._cache[url] = (self._now() + timedelta(seconds=lifetime), response)
        return response

    def _stale_usable(self, hit: tuple[datetime, Any] | None) -> bool:
        return hit is not None and self._now() < hit[0] + timedelta(seconds=CERTS_STALE_SECONDS)

    def _stale(self, hit: tuple[datetime, Any] | None) -> Any:
        assert hit is not None
        log.warning("google certs fetch failed; serving the last good certs", extra={"expired_at": hit[0].isoformat()})
        return hit[1]


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
    audience: str | None = None  # the client id the token was issued to (Apple: bundle or Services id)
    private_email: bool = False  # Apple's `is_private_email`: the email is a private relay address


def _invalid(provider: str) -> Unauthorized:
    return Unauthorized(f"the {provider} id_token is not valid", code="ID_TOKEN_INVALID")


def _provider_down(provider: str) -> BadGateway:
    return BadGateway(f"could not fetch {provider}'s signing keys", code="IDENTITY_PROVIDER_ERROR")


def verify_google(ctx: AppContext, token: str, nonce: str | None = None) -> Identity:
    """Verify a Google id_token; 401 ID_TOKEN_INVALID, 502 when Google's keys cannot be fetched.

    With `nonce` (the server nonce the app gave Google's SDK), the token's `nonce` claim must
    equal it as given (Google does not hash it); 401 NONCE_MISMATCH otherwise.
    """
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
            token,
            request,
            audience=audiences,
            certs_url=ctx.settings.google_certs_url,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except google_exceptions.TransportError as exc:
        log.warning("google certs fetch failed", extra={"error": type(exc).__name__})
        raise _provider_down("Google") from None
    except (ValueError, google_exceptions.GoogleAuthError, jwt.PyJWTError):
        # PyJWTError: with a JWK Set certs URL (Google's v3), google-auth verifies with pyjwt.
        raise _invalid("Google") from None
    if claims.get("iss") not in GOOGLE_ISSUERS or not claims.get("sub"):
        raise _invalid("Google")
    if nonce is not None:
        _check_nonce(claims, nonce, "Google")
    email = claims.get("email") if claims.get("email_verified") in (True, "true") else None
    return Identity("google", str(claims["sub"]), email, claims.get("name"))


def _check_nonce(claims: Mapping[str, Any], expected: str, provider: str) -> None:
    claimed = str(claims.get("nonce") or "")
    if not hmac.compare_digest(claimed.encode(), expected.encode()):
        raise Unauthorized(f"the {provider} id_token nonce does not match", code="NONCE_MISMATCH")


def nonce_hash(raw_nonce: str) -> str:
    """What Apple puts in the `nonce` claim for the app's raw nonce."""
    return hashlib.sha256(raw_nonce.encode()).hexdigest()


def verify_apple(ctx: AppContext, token: str, raw_nonce: str | None) -> Identity:
    """Verify an Apple id_token and its nonce claim (= sha256 of `raw_nonce`, which is required).

    401 ID_TOKEN_INVALID, NONCE_INVALID without a nonce, NONCE_MISMATCH; 502 when Apple's JWKS
    cannot be fetched. Whether the nonce was issued to this caller is `nonces.consume`'s check.
    """
    _require_jwt_shape(token, "Apple")
    claims = decode_apple_jwt(ctx, token, required=("exp", "iat", "iss", "aud", "sub"))
    if raw_nonce is None:
        raise nonces.invalid()
    _check_nonce(claims, nonce_hash(raw_nonce), "Apple")
    email = claims.get("email") if claims.get("email_verified") in (True, "true") else None
    relay = claims.get("is_private_email") in (True, "true")
    return Identity("apple", str(claims["sub"]), email, audience=str(claims["aud"]), private_email=relay)


def decode_apple_jwt(ctx: AppContext, token: str, required: tuple[str, ...]) -> dict[str, Any]:
    """The claims of a JWT Apple signed for one of our client ids (id_token or notification).

    RS256 only, a key of APPLE_JWKS_URL by `kid`, `iss` = APPLE_ISSUER, `aud` = APPLE_SERVICES_ID or
    one of APPLE_BUNDLE_IDS; 401 ID_TOKEN_INVALID, 502 when the JWKS cannot be fetched, 503 when
    Apple is not configured.
    """
    s = ctx.settings
    audiences = [a for a in (s.apple_services_id, *s.apple_bundle_ids) if a]
    if not audiences:
        raise ServiceUnavailable("Sign in with Apple is not configured", code="PROVIDER_NOT_CONFIGURED")
    jwks: jwt.PyJWKClient = ctx.singleton(
        "apple.jwks",
        lambda: jwt.PyJWKClient(s.apple_jwks_url, cache_keys=False, lifespan=3600, timeout=CERTS_TIMEOUT_SECONDS),
    )
    try:
        key = jwks.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audiences,
            issuer=s.apple_issuer,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": list(required)},
        )
    except jwt.PyJWKClientConnectionError as exc:
        log.warning("apple jwks fetch failed", extra={"error": type(exc).__name__})
        raise _provider_down("Apple") from None
    except jwt.PyJWTError:
        raise _invalid("Apple") from None
    return claims
