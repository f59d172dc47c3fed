"""Push notifications to users: find their devices, send through shared.push, forget dead tokens.

Pushes are best-effort and happen after the Postgres transaction committed: a push provider
failure is logged and never undoes or fails a state change (the apps also poll the session).
Tokens FCM reports as UNREGISTERED are deleted from `devices` at once, so a later fan-out
does not pay for them again. Data values are strings, as FCM data messages require.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shared import push
from shared.context import AppContext
from shared.push import PushResult

log = logging.getLogger(__name__)


def device_tokens(ctx: AppContext, user_type: str, user_ids: Iterable[str]) -> list[str]:
    """Every registered FCM token of these users."""
    ids = sorted({str(i) for i in user_ids})
    if not ids:
        return []
    rows = ctx.db.rows(
        "SELECT fcm_token FROM devices WHERE user_type = :t AND user_id = ANY(CAST(:ids AS uuid[])) ORDER BY id",
        t=user_type,
        ids=ids,
    )
    return [str(r["fcm_token"]) for r in rows]


def forget_tokens(ctx: AppContext, tokens: list[str]) -> int:
    """Delete device rows whose token the provider reported unregistered."""
    if not tokens:
        return 0
    with ctx.db.transaction() as tx:
        deleted = tx.execute("DELETE FROM devices WHERE fcm_token = ANY(CAST(:t AS text[]))", t=tokens)
        tx.commit()
    return deleted


def send(ctx: AppContext, user_type: str, user_ids: Iterable[str], data: dict[str, str]) -> PushResult:
    """Send one data message to every device of these users; never raises."""
    try:
        tokens = device_tokens(ctx, user_type, user_ids)
        if not tokens:
            return PushResult()
        result = push.provider(ctx).send(tokens, data)
        if result.unregistered:
            forget_tokens(ctx, result.unregistered)
            log.info("forgot unregistered push tokens", extra={"count": len(result.unregistered)})
        return result
    except Exception:  # a push must never fail the transition that already committed
        log.exception("push failed", extra={"push_type": data.get("type")})
        return PushResult(failed=1)
