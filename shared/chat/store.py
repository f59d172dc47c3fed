"""Reads of `chat_messages`, and `chat_read_markers`: the SQL lives here.

Messages are appended by shared.sessions.store (`append_message`, the one INSERT), under
the session's row lock: the ordering rule is written there and in docs/chat.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.db import Row, Tx
from shared.sessions.store import MESSAGE_COLUMNS


def find_by_client_id(tx: Tx, session_id: str, sender_type: str, sender_id: str, client_message_id: str) -> Row | None:
    """The message this sender already sent with this client_message_id, if any."""
    return tx.one(
        f"SELECT {MESSAGE_COLUMNS} FROM chat_messages"  # noqa: S608 (constant SQL)
        " WHERE session_id = CAST(:s AS uuid) AND sender_type = :t AND sender_id = CAST(:u AS uuid)"
        " AND client_message_id = CAST(:c AS uuid)",
        s=session_id,
        t=sender_type,
        u=sender_id,
        c=client_message_id,
    )


def before(tx: Tx, session_id: str, before_id: int, limit: int) -> tuple[list[Row], bool]:
    """The newest `limit` messages of the session with id < before_id (0: no bound), oldest first; and
    whether older ones remain."""
    rows = tx.rows(
        f"SELECT {MESSAGE_COLUMNS} FROM chat_messages"  # noqa: S608 (constant SQL)
        " WHERE session_id = CAST(:s AS uuid) AND (:before = 0 OR id < :before) ORDER BY id DESC LIMIT :n",
        s=session_id,
        before=before_id,
        n=limit + 1,
    )
    return rows[:limit][::-1], len(rows) > limit


def last_id(tx: Tx, session_id: str) -> int:
    """The session's highest message id (0 when it has none)."""
    return int(
        tx.scalar("SELECT COALESCE(max(id), 0) FROM chat_messages WHERE session_id = CAST(:s AS uuid)", s=session_id)
    )


def read_marker(tx: Tx, session_id: str, reader_type: str, reader_id: Any) -> int:
    """The last message id this reader has read (0 when none)."""
    if not reader_id:
        return 0
    value = tx.scalar(
        "SELECT last_read_id FROM chat_read_markers"
        " WHERE session_id = CAST(:s AS uuid) AND reader_type = :t AND reader_id = CAST(:u AS uuid)",
        s=session_id,
        t=reader_type,
        u=str(reader_id),
    )
    return int(value or 0)


def move_read_marker(tx: Tx, session_id: str, reader_type: str, reader_id: str, up_to: int, now: datetime) -> int:
    """Move the reader's marker to `up_to` unless it is already further; the marker after."""
    value = tx.scalar(
        "INSERT INTO chat_read_markers (session_id, reader_type, reader_id, last_read_id, updated_at)"
        " VALUES (CAST(:s AS uuid), :t, CAST(:u AS uuid), :n, :now)"
        " ON CONFLICT (session_id, reader_type, reader_id) DO UPDATE"
        "   SET last_read_id = GREATEST(chat_read_markers.last_read_id, EXCLUDED.last_read_id),"
        "       updated_at = EXCLUDED.updated_at"
        " RETURNING last_read_id",
        s=session_id,
        t=reader_type,
        u=reader_id,
        n=up_to,
        now=now,
    )
    return int(value)


def display_name(tx: Tx, user_type: str, user_id: Any) -> str | None:
    """A customer's or mitra's display name (for push titles)."""
    table = {"customer": "customers", "mitra": "mitras"}[user_type]
    value = tx.scalar(
        f"SELECT display_name FROM {table} WHERE id = CAST(:id AS uuid)",  # noqa: S608 (table from a fixed map)
        id=str(user_id),
    )
    return str(value) if value else None
