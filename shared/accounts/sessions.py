"""An app user's own sessions: logout (by refresh token or bearer), logout of every device, the list.

Logout ends more than the tokens (docs/auth.md, "Logout"):

- the session is revoked through `revocation.take_access_away`, so the mirror's marks are
  written before the commit, like every other revocation;
- the device's push tokens go in the same transaction: the token the app names (`fcm_token`)
  and every token that session registered, so nothing is pushed to a signed-out device;
- a mitra is taken offline after the commit (`availability.set_offline`: Postgres, then the
  mirror), so a mitra who signed out is offered nothing.

A logout by refresh token needs no access token: an app back from an hour in the background
holds an expired one, and logging out must not depend on refreshing first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared import availability, devices
from shared.auth import revocation
from shared.auth.principal import Principal
from shared.auth.refresh import token_hash
from shared.context import AppContext
from shared.db import Row
from shared.errors import Unauthorized

APP_USER_TYPES = ("customer", "mitra")
LOGOUT_REASON = "logout"
LOGOUT_ALL_REASON = "logout_all"

_SESSION_OF = (  # the session a refresh token belongs to
    "SELECT s.id, s.user_type, s.user_id FROM refresh_tokens rt JOIN auth_sessions s ON s.id = rt.session_id"
    " WHERE rt.token_hash = :h AND s.user_type = ANY(CAST(:kinds AS text[]))"
)


def caller_of_refresh_token(ctx: AppContext, refresh_token: str) -> Principal:
    """The app session a refresh token (current or an earlier one of it) belongs to; 401 if none."""
    row = ctx.db.one(_SESSION_OF, h=token_hash(refresh_token), kinds=list(APP_USER_TYPES))
    if row is None:
        raise Unauthorized("invalid refresh token", code="REFRESH_TOKEN_INVALID")
    return Principal(row["user_type"], str(row["user_id"]), str(row["id"]))


def logout(ctx: AppContext, caller: Principal, fcm_token: str | None = None) -> None:
    """End the caller's session and its device's push tokens; take a mitra offline. Idempotent."""
    with ctx.db.transaction() as tx:
        revocation.take_access_away(ctx, tx, reason=LOGOUT_REASON, session_ids=[caller.session_id])
        devices.remove_in_tx(tx, caller.user_type, caller.user_id, fcm_token=fcm_token, session_id=caller.session_id)
        tx.commit()
    _offline_if_mitra(ctx, caller)


def logout_all(ctx: AppContext, caller: Principal) -> dict[str, int]:
    """End every session of the caller (this one included) and forget every push token."""
    with ctx.db.transaction() as tx:
        revoked = revocation.take_access_away(
            ctx, tx, reason=LOGOUT_ALL_REASON, user_type=caller.user_type, user_id=caller.user_id
        )
        removed = devices.remove_all_in_tx(tx, caller.user_type, caller.user_id)
        tx.commit()
    _offline_if_mitra(ctx, caller)
    return {"revoked_sessions": len(revoked), "removed_devices": removed}


def _offline_if_mitra(ctx: AppContext, caller: Principal) -> None:
    if caller.user_type == "mitra":
        availability.set_offline(ctx, caller.user_id, f"mitra:{caller.user_id}")


def list_sessions(ctx: AppContext, caller: Principal) -> dict[str, Any]:
    """The caller's live sessions, the most recently used first; `current` marks the caller's."""
    rows = ctx.db.rows(
        "SELECT id, user_agent, created_at, last_used_at, expires_at FROM auth_sessions"
        " WHERE user_type = :t AND user_id = CAST(:u AS uuid) AND revoked_at IS NULL AND expires_at > :now"
        " ORDER BY last_used_at DESC, id",
        t=caller.user_type,
        u=caller.user_id,
        now=ctx.now(),
    )
    return {"sessions": [_session_json(r, caller.session_id) for r in rows]}


def _iso(value: datetime) -> str:
    return value.isoformat()


def _session_json(row: Row, current: str) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "device": row["user_agent"],
        "created_at": _iso(row["created_at"]),
        "last_used_at": _iso(row["last_used_at"]),
        "expires_at": _iso(row["expires_at"]),
        "current": str(row["id"]) == current,
    }
