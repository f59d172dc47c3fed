"""Cross-instance wake-ups for long-polling chat readers, through Valkey pub/sub: the publishing side.

A committed send or transition publishes its session id on the channel `Keys.chat_wake`
(`publish`); every instance's listener (shared.chat.longpoll.Hub, one pub/sub connection per
process) wakes the requests of that instance waiting on that session. Design: docs/chat.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from shared.context import AppContext
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)


def publish(ctx: AppContext, session_ids: Iterable[Any]) -> None:
    """Wake every reader of these sessions on every instance; after commit, best-effort."""
    ids = sorted({str(s) for s in session_ids if s})
    if not ids:
        return
    try:
        for session_id in ids:
            ctx.valkey.publish(ctx.keys.chat_wake, session_id)
    except VALKEY_ERRORS as exc:  # readers still see the row on their next poll
        log.warning("chat wake publish failed", extra={"error": type(exc).__name__})
