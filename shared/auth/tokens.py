"""Access tokens (JWT HS256) and auth sessions.

The algorithm is pinned to HS256 on verification, so `alg: none` and RS256/HS256 confusion
are rejected by construction. Verification and signing are a few lines of the standard
library each (split, base64url, HMAC-SHA256 compared in constant time, JSON, the claim
checks): every request pays for verification, refresh and sign-in for signing, and PyJWT
pulls in `cryptography` at import (a quarter of the heartbeat bundle's cold start) for
algorithms HS256 never uses. Signing builds the header and the keyed HMAC once per secret and
instance. The `kid` header is a fingerprint of the signing secret: after rotating
AUTH_JWT_SECRET, tokens signed with a secret listed in
AUTH_JWT_PREVIOUS_SECRETS keep verifying until they expire.

Revocation is recorded in Postgres (`auth_sessions.revoked_at`, the truth) and mirrored as
`{avail}:revoked:<sid>` in Valkey with a TTL of one access-token lifetime, so a revoked
token stops working at once (docs/auth.md); shared.auth.revocation does both, durably.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.auth.principal import USER_TYPES, Principal
from shared.config import Settings
from shared.context import AppContext
from shared.db import Row, Tx
from shared.errors import ConfigError, Unauthorized
from shared.validate import canonical_uuid

ALGORITHM = "HS256"


@functools.lru_cache(maxsize=32)
def key_id(secret: str) -> str:
    """A stable, non-reversible identifier of a signing secret (cached: it is on every request)."""
    return hashlib.sha256(b"bestie-kid:" + secret.encode()).hexdigest()[:16]


def _signing_secret(settings: Settings) -> str:
    if not settings.auth_jwt_secret:
        raise ConfigError("missing required environment variable AUTH_JWT_SECRET")
    return settings.auth_jwt_secret


def encode_access(settings: Settings, principal: Principal, now: datetime) -> str:
    """Sign an access token for `principal`, valid ACCESS_TOKEN_TTL_SECONDS from `now`."""
    secret = _signing_secret(settings)
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "sub": principal.user_id,
        "user_type": principal.user_type,
        "sid": principal.session_id,
        "iat": iat,
        "exp": iat + settings.access_token_ttl_seconds,
        "iss": settings.auth_jwt_issuer,
    }
    if principal.role:
        claims["role"] = principal.role
    head, mac = _signer(secret)
    body = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    mac = mac.copy()
    mac.update(signing_input)
    return f"{head}.{body}.{_b64encode(mac.digest())}"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=8)
def _signer(secret: str) -> tuple[str, Any]:
    """The encoded header and an HMAC-SHA256 keyed with `secret`, built once per secret (each
    token signs with a copy): the JOSE header is the same for every token a secret signs.
    The same compact serialization PyJWT writes (RFC 7515 §7.1, RFC 7519 §7.1)."""
    header = {"alg": ALGORITHM, "kid": key_id(secret), "typ": "JWT"}
    return _b64encode(json.dumps(header, separators=(",", ":")).encode()), hmac.new(
        secret.encode(), None, hashlib.sha256
    )


REQUIRED_CLAIMS = ("exp", "iat", "iss", "sub", "sid", "user_type")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class _Invalid(Exception):
    """The token is refused (TOKEN_INVALID)."""


class _Malformed(_Invalid):
    """Not three base64url parts with a JSON object header."""


class _UnknownKey(_Invalid):
    """Not HS256, or its kid names no secret we sign or signed with."""


class _Expired(_Invalid):
    """Signed by a known key and well formed, but expired (TOKEN_EXPIRED)."""


def _b64(part: str) -> bytes:
    """Strict unpadded base64url."""
    if len(part) % 4 == 1 or not _B64URL.fullmatch(part):
        raise _Invalid
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise _Invalid from None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except ValueError:
        raise _Invalid from None
    if not isinstance(found, dict):
        raise _Invalid
    return found


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid
    return value


def _verify(settings: Settings, token: str, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The claims of an HS256 token signed by one of `secrets` (by kid); raises _Invalid/_Expired.

    Checked in PyJWT's order: shape, header (alg pinned, no `crit`), signature, then the claims
    (required ones present, exp and nbf against the wall clock, iss, no audience).
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise _Malformed
    head, body, signature = parts
    try:
        header = _json_object(_b64(head))
    except _Invalid:
        raise _Malformed from None
    kid = header.get("kid")
    secret = secrets.get(kid) if isinstance(kid, str) else None
    if header.get("alg") != ALGORITHM or secret is None:
        raise _UnknownKey
    if "crit" in header:
        raise _Invalid
    expected = hmac.new(secret.encode(), f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _b64(signature)):
        raise _Invalid
    claims = _json_object(_b64(body))
    if any(name not in claims for name in REQUIRED_CLAIMS) or "aud" in claims:
        raise _Invalid
    wall = int(time.time())
    _int_claim(claims, "iat")
    if "nbf" in claims and _int_claim(claims, "nbf") > wall:
        raise _Invalid
    if _int_claim(claims, "exp") <= wall:
        raise _Expired
    if claims["iss"] != settings.auth_jwt_issuer:
        raise _Invalid
    return claims


def _known_secrets(settings: Settings) -> dict[str, str]:
    return {key_id(s): s for s in (_signing_secret(settings), *settings.auth_jwt_previous_secrets)}


def decode_access(settings: Settings, token: str, now: datetime) -> Principal:
    """Verify signature, algorithm, exp/iat/iss and claim shapes; return the principal."""
    if not isinstance(token, str) or not token.isascii():
        raise Unauthorized("malformed access token", code="TOKEN_INVALID")
    try:
        claims = _verify(settings, token, _known_secrets(settings))
    except _Malformed:
        raise Unauthorized("malformed access token", code="TOKEN_INVALID") from None
    except _UnknownKey:
        raise Unauthorized("access token is not signed by a known key", code="TOKEN_INVALID") from None
    except _Expired:
        raise Unauthorized("access token expired", code="TOKEN_EXPIRED") from None
    except _Invalid:
        raise Unauthorized("invalid access token", code="TOKEN_INVALID") from None
    return _principal(claims, now)


def _principal(claims: dict[str, Any], now: datetime) -> Principal:
    # _verify checks exp against the wall clock; check again against the injected clock.
    if int(claims["exp"]) <= int(now.timestamp()):
        raise Unauthorized("access token expired", code="TOKEN_EXPIRED")
    if int(claims["iat"]) > int(now.timestamp()) + 60:
        raise Unauthorized("access token issued in the future", code="TOKEN_INVALID")
    user_type = claims["user_type"]
    if user_type not in USER_TYPES:
        raise Unauthorized("invalid access token", code="TOKEN_INVALID")
    try:
        user_id, sid = canonical_uuid(claims["sub"]), canonical_uuid(claims["sid"])
    except (ValueError, TypeError, AttributeError):
        raise Unauthorized("invalid access token", code="TOKEN_INVALID") from None
    return Principal(user_type=user_type, user_id=user_id, session_id=sid, role=claims.get("role"))


def create_session(
    tx: Tx, settings: Settings, user_type: str, user_id: str, now: datetime, user_agent: str | None = None
) -> str:
    """Insert an auth session (absolute expiry = refresh-token lifetime); return its id."""
    sid: str = str(
        tx.scalar(
            "INSERT INTO auth_sessions (user_type, user_id, created_at, last_used_at, expires_at, user_agent)"
            " VALUES (:t, CAST(:u AS uuid), :now, :now, :exp, :ua) RETURNING id",
            t=user_type,
            u=user_id,
            now=now,
            exp=now + timedelta(days=settings.refresh_token_ttl_days),
            ua=user_agent,
        )
    )
    return sid


def revoke_sessions_in_tx(
    tx: Tx,
    *,
    now: datetime,
    reason: str,
    session_ids: Iterable[str] = (),
    user_type: str | None = None,
    user_id: str | None = None,
    except_session: str | None = None,
) -> list[str]:
    """Revoke sessions by id or all of a user's; return the ids revoked now (Postgres only).

    Callers use shared.auth.revocation.take_access_away, which also writes the mirror.
    """
    ids = list(session_ids)
    rows = tx.rows(
        "UPDATE auth_sessions SET revoked_at = :now, revoked_reason = :reason"
        " WHERE revoked_at IS NULL"
        "   AND (id = ANY(CAST(:ids AS uuid[])) OR (user_type = :t AND user_id = CAST(:u AS uuid)))"
        "   AND id IS DISTINCT FROM CAST(:keep AS uuid)"
        " RETURNING id",
        now=now,
        reason=reason,
        ids=ids,
        t=user_type,
        u=user_id,
        keep=except_session,
    )
    return [str(r["id"]) for r in rows]


_SESSION_STATE = "SELECT revoked_at, expires_at FROM auth_sessions WHERE id = CAST(:sid AS uuid)"


def _unusable(row: Row | None, now: datetime) -> bool:
    return row is None or row["revoked_at"] is not None or row["expires_at"] <= now


def session_revoked_in_postgres(ctx: AppContext, sid: str) -> bool:
    """The durable check: revoked, expired or unknown sessions are not usable."""
    return _unusable(ctx.db.one(_SESSION_STATE, sid=sid), ctx.now())


def session_revoked_in(tx: Tx, sid: str, now: datetime) -> bool:
    """The same durable check inside the caller's transaction (no second connection)."""
    return _unusable(tx.one(_SESSION_STATE, sid=sid), now)
