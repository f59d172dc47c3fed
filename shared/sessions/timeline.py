"""A session's timeline: its audit trail (`chat_session_events`) and the messages of its conversation.

Every transition appends an event, and the ones a party sees also a `system` message in the
conversation (`system_message`). Both are written inside the transition's own transaction,
right after the conditional UPDATE that holds the session's row lock, so they commit with the
transition (or not at all) and the message takes its place in the session's id order.

Ordering rule (docs/chat.md): every insert into one session's messages happens while its
transaction holds that session's row lock (a send takes `store.lock_for_messages`; a
transition's conditional UPDATE holds it already), so within a session ids are allocated and
committed in the same order. A reader of `id > after` therefore never skips an id that
commits later. `append_message` is the one INSERT into `chat_messages`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shared.db import Row, Tx

MESSAGE_COLUMNS = "id, session_id, sender_type, sender_id, client_message_id, body, detail, created_at"

# The transitions that appear in the conversation (body of the system message).
KINDS = ("accepted", "active", "extended", "ended", "expired", "rerouted", "cancelled")


def record_event(
    tx: Tx, session_id: str, event_type: str, actor: str, now: datetime, detail: dict[str, Any] | None = None
) -> None:
    """Append one audit row to chat_session_events."""
    tx.execute(
        "INSERT INTO chat_session_events (session_id, type, actor, at, detail)"
        " VALUES (CAST(:s AS uuid), :t, :a, :at, CAST(:d AS jsonb))",
        s=session_id,
        t=event_type,
        a=actor,
        at=now,
        d=json.dumps(detail or {}),
    )


def events_of(tx: Tx, session_id: str) -> list[Row]:
    """The session's audit trail, oldest first."""
    return tx.rows(
        "SELECT id, type, actor, at, detail FROM chat_session_events"
        " WHERE session_id = CAST(:s AS uuid) ORDER BY at, id",
        s=session_id,
    )


def append_message(
    tx: Tx,
    session_id: str,
    sender_type: str,
    sender_id: str | None,
    client_message_id: str | None,
    body: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> Row:
    """Append one message; the caller holds the session's row lock."""
    row = tx.one(
        "INSERT INTO chat_messages (session_id, sender_type, sender_id, client_message_id, body, detail, created_at)"  # noqa: S608
        " VALUES (CAST(:s AS uuid), :t, CAST(:u AS uuid), CAST(:c AS uuid), :body, CAST(:d AS jsonb), :now)"
        f" RETURNING {MESSAGE_COLUMNS}",
        s=session_id,
        t=sender_type,
        u=sender_id,
        c=client_message_id,
        body=body,
        d=json.dumps(detail) if detail is not None else None,
        now=now,
    )
    assert row is not None
    return row


def system_message(tx: Tx, session_id: Any, kind: str, now: datetime, **detail: Any) -> None:
    """Append the system message announcing `kind`; the caller's UPDATE holds the session row."""
    assert kind in KINDS, kind
    clean = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items() if v is not None}
    append_message(tx, str(session_id), "system", None, None, kind, now, clean)


def system_messages(tx: Tx, session_ids: Iterable[Any], kind: str, now: datetime, **detail: Any) -> None:
    """The same system message for each session of a batch (the expiry sweep)."""
    for session_id in session_ids:
        system_message(tx, session_id, kind, now, **detail)
