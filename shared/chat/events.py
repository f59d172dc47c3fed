"""Lifecycle transitions as `system` messages in the conversation (SPEC §11).

The pairing transitions call `system_message` inside their own transaction, right after the
conditional UPDATE that holds the session's row lock, so the message commits with the
transition (or not at all) and takes its place in the session's id order. After the commit
they call `wake_readers` so long-polling readers on every instance see the change at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shared.chat import store, wake
from shared.context import AppContext
from shared.db import Tx

# The transitions that appear in the conversation (body of the system message).
KINDS = ("accepted", "active", "extended", "ended", "expired", "rerouted", "cancelled")


def system_message(tx: Tx, session_id: Any, kind: str, now: datetime, **detail: Any) -> None:
    """Append the system message announcing `kind`; the caller's UPDATE holds the session row."""
    assert kind in KINDS, kind
    clean = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items() if v is not None}
    store.insert(tx, str(session_id), "system", None, None, kind, now, clean)


def system_messages(tx: Tx, session_ids: Iterable[Any], kind: str, now: datetime, **detail: Any) -> None:
    """The same system message for each session of a batch (the expiry sweep)."""
    for session_id in session_ids:
        system_message(tx, session_id, kind, now, **detail)


def wake_readers(ctx: AppContext, *session_ids: Any) -> None:
    """After commit: wake the readers of these sessions on every instance."""
    wake.publish(ctx, session_ids)
