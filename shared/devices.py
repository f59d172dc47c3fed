"""Push targets (`devices`): FCM registration tokens of customers and mitras.

A token belongs to one app install; when another account signs in on that install the
upsert moves the token to it, so pushes never reach the previous account.

Bounded, because every push to a user is one FCM call per 500 of its tokens: a user keeps at
most MAX_DEVICES_PER_USER tokens (registering one more evicts the least recently registered,
which is the install most likely gone), and a token is at most MAX_TOKEN_CHARS characters.
FCM documents no length; its tokens are about 160 characters, so 1024 leaves room for format
changes while refusing the 4 KB junk that made each push slow.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared import validate
from shared.context import AppContext
from shared.db import Tx

PLATFORMS = ("android", "ios", "web")
MAX_DEVICES_PER_USER = 10
MAX_TOKEN_CHARS = 1024


def register(
    ctx: AppContext, user_type: str, user_id: str, body: dict[str, Any], session_id: str | None = None
) -> dict[str, Any]:
    """Validate a PUT .../devices body {fcm_token, platform} and upsert it for this user (and session)."""
    token = validate.string(body, "fcm_token", max_len=MAX_TOKEN_CHARS) or ""
    platform = validate.choice(body, "platform", PLATFORMS) or ""
    return upsert(ctx, user_type, user_id, token, platform, session_id)


def upsert(
    ctx: AppContext, user_type: str, user_id: str, fcm_token: str, platform: str, session_id: str | None = None
) -> dict[str, Any]:
    """Register (or move) an FCM token to this user, evicting its oldest beyond the cap; return the device.

    `session_id` is the auth session that registered it: its logout removes the token.
    """
    with ctx.db.transaction() as tx:
        # One user's registrations in turn, so two at once cannot both keep the cap's last place.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('devices'), hashtext(:t || ':' || :u))", t=user_type, u=user_id
        )
        row = tx.one(
            "INSERT INTO devices (user_type, user_id, fcm_token, platform, updated_at, session_id)"
            " VALUES (:t, CAST(:u AS uuid), :tok, :p, :now, CAST(:sid AS uuid))"
            " ON CONFLICT (fcm_token) DO UPDATE SET user_type = EXCLUDED.user_type, user_id = EXCLUDED.user_id,"
            "   platform = EXCLUDED.platform, updated_at = EXCLUDED.updated_at, session_id = EXCLUDED.session_id"
            " RETURNING platform, updated_at",
            t=user_type,
            u=user_id,
            tok=fcm_token,
            p=platform,
            now=ctx.now(),
            sid=session_id,
        )
        tx.execute(
            "DELETE FROM devices WHERE fcm_token IN (SELECT fcm_token FROM devices"
            "   WHERE user_type = :t AND user_id = CAST(:u AS uuid)"
            "   ORDER BY updated_at DESC, fcm_token DESC OFFSET :cap)",
            t=user_type,
            u=user_id,
            cap=MAX_DEVICES_PER_USER,
        )
        tx.commit()
    assert row is not None
    return {"registered": True, "platform": row["platform"], "updated_at": row["updated_at"].isoformat()}


def unregister(ctx: AppContext, user_type: str, user_id: str, body: dict[str, Any]) -> None:
    """Validate a DELETE .../devices body {fcm_token} and forget the token if it is this user's.

    Idempotent: a token already gone, or registered to someone else, changes nothing (no error,
    so a reply tells nobody whose a token is).
    """
    token = validate.string(body, "fcm_token", max_len=MAX_TOKEN_CHARS) or ""
    with ctx.db.transaction() as tx:
        remove_in_tx(tx, user_type, user_id, fcm_token=token)
        tx.commit()


def remove_in_tx(
    tx: Tx, user_type: str, user_id: str, *, fcm_token: str | None = None, session_id: str | None = None
) -> int:
    """Delete this user's token `fcm_token` and every token `session_id` registered; how many rows went."""
    return tx.execute(
        "DELETE FROM devices WHERE user_type = :t AND user_id = CAST(:u AS uuid)"
        " AND (fcm_token = :tok OR session_id = CAST(:sid AS uuid))",
        t=user_type,
        u=user_id,
        tok=fcm_token,
        sid=session_id,
    )


def remove_all_in_tx(tx: Tx, user_type: str, user_id: str) -> int:
    """Delete every token of this user (logout of all devices); how many rows went."""
    return tx.execute("DELETE FROM devices WHERE user_type = :t AND user_id = CAST(:u AS uuid)", t=user_type, u=user_id)


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
