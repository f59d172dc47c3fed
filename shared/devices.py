"""Push targets (`devices`): FCM registration tokens of customers and mitras.

A token belongs to one app install; when another account signs in on that install the
upsert moves the token to it, so pushes never reach the previous account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared import validate
from shared.context import AppContext

PLATFORMS = ("android", "ios", "web")


def register(ctx: AppContext, user_type: str, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Validate a PUT .../devices body {fcm_token, platform} and upsert it for this user."""
    token = validate.string(body, "fcm_token", max_len=4096) or ""
    platform = validate.choice(body, "platform", PLATFORMS) or ""
    return upsert(ctx, user_type, user_id, token, platform)


def upsert(ctx: AppContext, user_type: str, user_id: str, fcm_token: str, platform: str) -> dict[str, Any]:
    """Register (or move) an FCM token to this user; return the stored device."""
    with ctx.db.transaction() as tx:
        row = tx.one(
            "INSERT INTO devices (user_type, user_id, fcm_token, platform, updated_at)"
            " VALUES (:t, CAST(:u AS uuid), :tok, :p, :now)"
            " ON CONFLICT (fcm_token) DO UPDATE SET user_type = EXCLUDED.user_type, user_id = EXCLUDED.user_id,"
            "   platform = EXCLUDED.platform, updated_at = EXCLUDED.updated_at"
            " RETURNING platform, updated_at",
            t=user_type,
            u=user_id,
            tok=fcm_token,
            p=platform,
            now=ctx.now(),
        )
        tx.commit()
    assert row is not None
    return {"registered": True, "platform": row["platform"], "updated_at": row["updated_at"].isoformat()}


def tokens_for(ctx: AppContext, user_type: str, user_ids: Iterable[str]) -> dict[str, list[str]]:
    """FCM tokens per user id (users without a device are absent)."""
    ids = list(user_ids)
    if not ids:
        return {}
    rows = ctx.db.rows(
        "SELECT user_id, fcm_token FROM devices WHERE user_type = :t AND user_id = ANY(CAST(:ids AS uuid[]))",
        t=user_type,
        ids=ids,
    )
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(str(r["user_id"]), []).append(r["fcm_token"])
    return out


def delete_tokens(ctx: AppContext, fcm_tokens: Iterable[str]) -> int:
    """Forget tokens FCM reported dead (unregistered, another sender's, malformed); return how many rows went."""
    tokens = list(fcm_tokens)
    if not tokens:
        return 0
    with ctx.db.transaction() as tx:
        n = tx.execute("DELETE FROM devices WHERE fcm_token = ANY(CAST(:t AS text[]))", t=tokens)
        tx.commit()
    return n
