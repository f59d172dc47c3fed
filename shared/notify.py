"""Push notifications to users: find their devices, send through shared.push, forget dead tokens.

Pushes are best-effort and happen after the Postgres transaction committed: a push provider
failure is logged and never undoes or fails a state change (the apps also poll the session).
Tokens FCM reports as UNREGISTERED are deleted from `devices` at once, so a later fan-out
does not pay for them again. Data values are strings, as FCM data messages require.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shared import devices, push
from shared.context import AppContext
from shared.push import PushResult

log = logging.getLogger(__name__)


def send(
    ctx: AppContext, user_type: str, user_ids: Iterable[str], data: dict[str, str], collapse_key: str | None = None
) -> PushResult:
    """Send one data message to every device of these users; never raises.

    With `collapse_key`, a device that was offline gets only the newest message of that key.
    """
    try:
        by_user = devices.tokens_for(ctx, user_type, sorted({str(i) for i in user_ids}))
        tokens = [token for user_tokens in by_user.values() for token in user_tokens]
        if not tokens:
            return PushResult()
        result = push.provider(ctx).send(tokens, data, collapse_key)
        if result.unregistered:
            devices.delete_tokens(ctx, result.unregistered)
            log.info("forgot unregistered push tokens", extra={"count": len(result.unregistered)})
        return result
    except Exception:  # a push must never fail the transition that already committed
        log.exception("push failed", extra={"push_type": data.get("type")})
        return PushResult(failed=1)
