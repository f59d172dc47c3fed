"""Access tokens (JWT HS256) and auth sessions.

The algorithm is pinned to HS256 on verification, so `alg: none` and RS256/HS256 confusion
are rejected by construction. The `kid` header is a fingerprint of the signing secret:
after rotating AUTH_JWT_SECRET, tokens signed with a secret listed in
AUTH_JWT_PREVIOUS_SECRETS keep verifying until they expire.

Revocation is recorded in Postgres (`auth_sessions.revoked_at`, the truth) and mirrored as
`{avail}:revoked:<sid>` in Valkey with a TTL of one access-token lifetime, so a revoked
token stops working at once (SPEC §6); shared.auth.revocation does both, durably.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import jwt

from shared.auth.principal import USER_TYPES, Principal
from shared.config import Settings
from shared.context import AppContext
from shared.db import Row, Tx
from shared.errors import ConfigError, Unauthorized

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
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": key_id(secret)})


def _decode(settings: Settings, token: str, secret: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode_complete(
        token,
        secret,
        algorithms=[ALGORITHM],
        issuer=settings.auth_jwt_issuer,
        options={"require": ["exp", "iat", "iss", "sub", "sid", "user_type"], "verify_iat": False},
        leeway=0,
    )
    return found


def decode_access(settings: Settings, token: str, now: datetime) -> Principal:
    """Verify signature, algorithm, exp/iat/iss and claim shapes; return the principal."""
    current = _signing_secret(settings)
    try:
        # The common case parses the token once: valid, signed with the current secret, its kid.
        found = _decode(settings, token, current)
        if found["header"].get("kid") == key_id(current):
            return _principal(found["payload"], now)
    except jwt.PyJWTError:
        pass  # every other case takes the full path below, with its precise error
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("malformed access token", code="TOKEN_INVALID") from None
    secrets = {key_id(s): s for s in (_signing_secret(settings), *settings.auth_jwt_previous_secrets)}
    secret = secrets.get(str(header.get("kid")))
    if secret is None or header.get("alg") != ALGORITHM:
        raise Unauthorized("access token is not signed by a known key", code="TOKEN_INVALID")
    try:
        claims = _decode(settings, token, secret)["payload"]
    except jwt.ExpiredSignatureError:
        raise Unauthorized("access token expired", code="TOKEN_EXPIRED") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid access token", code="TOKEN_INVALID") from None
    return _principal(claims, now)


def _principal(claims: dict[str, Any], now: datetime) -> Principal:
    # pyjwt checks exp against the wall clock; check again against the injected clock.
    if int(claims["exp"]) <= int(now.timestamp()):
        raise Unauthorized("access token expired", code="TOKEN_EXPIRED")
    if int(claims["iat"]) > int(now.timestamp()) + 60:
        raise Unauthorized("access token issued in the future", code="TOKEN_INVALID")
    user_type = claims["user_type"]
    if user_type not in USER_TYPES:
        raise Unauthorized("invalid access token", code="TOKEN_INVALID")
    try:
        user_id, sid = str(uuid.UUID(claims["sub"])), str(uuid.UUID(claims["sid"]))
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
