"""Sessions and refresh tokens: issue, rotate with reuse detection, log out.

A refresh token is 256 random bits, stored only as SHA-256 (high entropy needs no bcrypt, so
refreshing stays fast) and rotated on every use. Rotation and reuse detection run inside one
Postgres transaction that locks the session row (`FOR UPDATE`), so concurrent refreshes of
one session are serialized by the database, whichever instance serves them.

Presenting a used token revokes the whole session (RFC 9700 §4.14.2), except for the
documented grace: the *parent* of the session's current token, replayed within
REFRESH_REUSE_GRACE_SECONDS of its use, gets the current child back (not a fork). To be able
to hand the child back, a child token is derived from its parent: HMAC-SHA256(signing secret,
parent); only a holder of the parent and the server secret can compute it, and the database
still stores nothing but hashes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.auth import revocation, tokens
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Prepared, Row, Tx
from shared.errors import Unauthorized

TOKEN_BYTES = 32


@dataclass(frozen=True)
class Issued:
    """A fresh token pair for one session."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    session_expires_at: datetime
    principal: Principal
    account: Row | None = None  # what `account_of` read, when the caller asked for it

    def body(self, user: dict[str, Any], *, include_refresh: bool = True) -> dict[str, Any]:
        """The token response (docs/auth.md; the refresh token is left out on cookie routes)."""
        out: dict[str, Any] = {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in}
        if include_refresh:
            out["refresh_token"] = self.refresh_token
            out["refresh_expires_at"] = self.session_expires_at.isoformat()
        out["user"] = user
        return out


def token_hash(token: str) -> bytes:
    """SHA-256 of the opaque token (what Postgres stores)."""
    return hashlib.sha256(token.encode()).digest()


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@functools.lru_cache(maxsize=8)
def _child_mac(secret: str) -> Any:
    """HMAC-SHA256 keyed with `secret` and fed the prefix, once per instance (copied per token)."""
    return hmac.new(secret.encode(), b"refresh-child:", hashlib.sha256)


def _child_of(secret: str, parent: str) -> str:
    mac = _child_mac(secret).copy()
    mac.update(parent.encode())
    return _encode(mac.digest())


def _signing_secrets(ctx: AppContext) -> tuple[str, ...]:
    return (ctx.settings.auth_jwt_secret or "", *ctx.settings.auth_jwt_previous_secrets)


def start_session(
    ctx: AppContext, tx: Tx, user_type: str, user_id: str, *, role: str | None = None, user_agent: str | None = None
) -> Issued:
    """Create a session with its first refresh token (inside the caller's transaction)."""
    now = ctx.now()
    sid = tokens.create_session(tx, ctx.settings, user_type, user_id, now, user_agent)
    refresh_token = _encode(secrets.token_bytes(TOKEN_BYTES))
    tx.execute(
        "INSERT INTO refresh_tokens (session_id, token_hash, issued_at) VALUES (CAST(:sid AS uuid), :h, :now)",
        sid=sid,
        h=token_hash(refresh_token),
        now=now,
    )
    expires = now + timedelta(days=ctx.settings.refresh_token_ttl_days)
    return _issued(ctx, Principal(user_type, user_id, sid, role), refresh_token, expires)


def _issued(
    ctx: AppContext, principal: Principal, refresh_token: str, session_expires_at: datetime, account: Row | None = None
) -> Issued:
    return Issued(
        access_token=tokens.encode_access(ctx.settings, principal, ctx.now()),
        refresh_token=refresh_token,
        expires_in=ctx.settings.access_token_ttl_seconds,
        session_id=principal.session_id,
        session_expires_at=session_expires_at,
        principal=principal,
        account=account,
    )


_LOOKUP = (
    "SELECT rt.id, rt.session_id, rt.used_at, rt.replaced_by, s.user_type, s.user_id, s.expires_at, s.revoked_at,"
    "       child.token_hash AS child_hash, child.used_at AS child_used_at"
    " FROM refresh_tokens rt"
    " JOIN auth_sessions s ON s.id = rt.session_id"
    " LEFT JOIN refresh_tokens child ON child.id = rt.replaced_by"
    " WHERE rt.token_hash = :h"
)


# The session a refresh token belongs to, locked (one statement: find and lock).
_LOCK_OWNER = (
    "SELECT s.id FROM auth_sessions s"
    " WHERE s.id = (SELECT session_id FROM refresh_tokens WHERE token_hash = :h) FOR UPDATE OF s"
)

# Rotation in one statement: the child token, the parent marked used and pointing at it, and
# the session's last use (every refresh is a handful of round trips; these were three).
_ROTATE = (
    "WITH child AS (INSERT INTO refresh_tokens (session_id, token_hash, issued_at) VALUES (:sid, :h, :now)"
    "               RETURNING id),"
    " parent AS (UPDATE refresh_tokens SET used_at = :now, replaced_by = (SELECT id FROM child) WHERE id = :id)"
    " UPDATE auth_sessions SET last_used_at = :now WHERE id = :sid"
)


# The common case, an unused token of a live session, in one statement: touch the session (its
# row lock serializes refreshes of one session, as _LOCK_OWNER does), mark the presented
# token used and insert its child. The token's UPDATE is conditional on `used_at IS NULL`,
# which Postgres re-checks on the latest row version after waiting for a concurrent refresh
# of the same token: the second one then updates nothing, inserts nothing, returns no row and
# is rolled back, and the full path decides it (grace or reuse). The child is inserted only
# when its parent was updated, and only then is a row returned.
_ROTATE_UNUSED = Prepared(
    "WITH s AS (UPDATE auth_sessions SET last_used_at = :now"
    "           WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = :h)"
    "             AND revoked_at IS NULL AND expires_at > :now AND user_type = ANY(CAST(:kinds AS text[]))"
    "           RETURNING id, user_type, user_id, expires_at),"
    " c AS (SELECT gen_random_uuid() AS id),"
    " parent AS (UPDATE refresh_tokens rt SET used_at = :now, replaced_by = c.id FROM s, c"
    "            WHERE rt.token_hash = :h AND rt.session_id = s.id AND rt.used_at IS NULL RETURNING rt.session_id),"
    " child AS (INSERT INTO refresh_tokens (id, session_id, token_hash, issued_at)"
    "           SELECT c.id, parent.session_id, :child_h, :now FROM parent, c RETURNING session_id)"
    " SELECT s.id AS session_id, s.user_type, s.user_id, s.expires_at FROM s JOIN child ON child.session_id = s.id"
)


class _Reused(Exception):
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id


def rotate(
    ctx: AppContext,
    refresh_token: str,
    user_types: tuple[str, ...],
    account_of: Callable[[Tx, str], Row] | None = None,
) -> Issued:
    """Exchange a refresh token for a new pair; 401 when invalid, expired, revoked or reused.

    `account_of(tx, user_id)` reads the account (control-center users: its current role, in
    `Issued.account`) or raises when it may no longer sign in; read from Postgres on every
    refresh, inside the rotation's transaction.
    """
    if not refresh_token or len(refresh_token) > 128:
        raise Unauthorized("invalid refresh token", code="REFRESH_TOKEN_INVALID")
    now = ctx.now()
    child = _child_of(_signing_secrets(ctx)[0], refresh_token)
    with ctx.db.transaction() as tx:  # the common case: three round trips (plus the account)
        row = tx.one(
            _ROTATE_UNUSED, h=token_hash(refresh_token), child_h=token_hash(child), now=now, kinds=list(user_types)
        )
        if row is not None:
            issued = _issued_for(ctx, tx, row, child, account_of)
            tx.commit()
            return issued
    try:
        with ctx.db.transaction() as tx:
            # Lock the session first, then read its tokens in a new statement: under READ
            # COMMITTED that read sees what a concurrent refresh committed before we got the lock.
            owner = tx.scalar(_LOCK_OWNER, h=token_hash(refresh_token))
            row = tx.one(_LOOKUP, h=token_hash(refresh_token)) if owner is not None else None
            if row is None or row["user_type"] not in user_types:
                raise Unauthorized("invalid refresh token", code="REFRESH_TOKEN_INVALID")
            sid = str(row["session_id"])
            if row["revoked_at"] is not None:
                raise Unauthorized("session revoked", code="SESSION_REVOKED")
            if row["expires_at"] <= now:
                raise Unauthorized("session expired, sign in again", code="REFRESH_TOKEN_EXPIRED")
            if row["used_at"] is None:  # unused, yet not rotated above: a change it waited for
                _rotate_unused(tx, row, child, now)
                issued = _issued_for(ctx, tx, row, child, account_of)
                tx.commit()
                return issued
            current = _grace_child(ctx, row, refresh_token, now)
            if current is None:
                revocation.take_access_away(ctx, tx, reason="refresh_token_reused", session_ids=[sid])
                tx.commit()
                raise _Reused(sid)
            tx.execute("UPDATE auth_sessions SET last_used_at = :now WHERE id = CAST(:sid AS uuid)", now=now, sid=sid)
            issued = _issued_for(ctx, tx, row, current, account_of)
            tx.commit()
            return issued
    except _Reused:
        raise Unauthorized(
            "refresh token already used; the session is revoked, sign in again", code="REFRESH_TOKEN_REUSED"
        ) from None


def _issued_for(
    ctx: AppContext, tx: Tx, row: Row, refresh_token: str, account_of: Callable[[Tx, str], Row] | None
) -> Issued:
    """The pair for the session in `row` (session_id, user_type, user_id, expires_at)."""
    user_id = str(row["user_id"])
    account = account_of(tx, user_id) if account_of else None
    role = str(account["role"]) if account and "role" in account else None  # staff accounts have one
    principal = Principal(row["user_type"], user_id, str(row["session_id"]), role)
    return _issued(ctx, principal, refresh_token, row["expires_at"], account)


def _rotate_unused(tx: Tx, row: Row, child: str, now: datetime) -> None:
    tx.execute(_ROTATE, sid=row["session_id"], h=token_hash(child), now=now, id=row["id"])


def _grace_child(ctx: AppContext, row: Row, parent: str, now: datetime) -> str | None:
    """The current child when `parent` is its direct parent replayed within the grace; else None."""
    grace = timedelta(seconds=ctx.settings.refresh_reuse_grace_seconds)
    if row["child_hash"] is None or row["child_used_at"] is not None or now - row["used_at"] > grace:
        return None
    for secret in _signing_secrets(ctx):
        candidate = _child_of(secret, parent)
        if hmac.compare_digest(token_hash(candidate), bytes(row["child_hash"])):
            return candidate
    return None


def revoke_by_refresh_token(ctx: AppContext, refresh_token: str, reason: str = "logout") -> str | None:
    """Revoke the session a refresh token belongs to (cookie logout); return its id."""
    with ctx.db.transaction() as tx:
        sid = tx.scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = :h", h=token_hash(refresh_token))
        if sid is None:
            return None
        revocation.take_access_away(ctx, tx, reason=reason, session_ids=[str(sid)])
        tx.commit()
    return str(sid)
