"""The per-user event feed (docs/events.md): one ordered, durable stream per customer and mitra.

Writers call `add` (or the helpers below it) inside the transaction that makes the change;
the events are buffered on that transaction and written as its last statements before COMMIT
(`Tx.before_commit`), so they commit with the change or not at all. After the COMMIT each user
is woken on the existing chat wake channel (`Keys.chat_wake`, key `feed:<type>:<id>`), which
every instance's listener (shared.chat.longpoll) turns into wake-ups of its waiting readers.

Ordering: the writer takes each user's transaction-scoped advisory lock, in one global order
(sorted keys, so two writers never wait for each other crosswise), right before its INSERT and
holds it until its COMMIT. The next writer of that user takes its ids only after that, so within
one user ids are allocated in commit order and a reader of `id > after` never skips one that
commits later (the rule of docs/chat.md, "Ordering", for a stream that many sessions write).
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from shared import context
from shared.db import Row, Tx
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)

USER_TYPES = ("customer", "mitra")
# Event types (docs/events.md); apps ignore types they do not know.
OFFER_NEW = "offer_new"
OFFER_CLOSED = "offer_closed"
SESSION = "session"
MESSAGE = "message"
READ_MARKER = "read_marker"
ACCOUNT = "account"

MAX_LIMIT = 100
DEFAULT_LIMIT = 50
RETENTION = timedelta(days=7)


class _Event(NamedTuple):
    user_type: str
    user_id: str
    type: str
    session_id: str | None
    detail: dict[str, Any]
    created_at: datetime


_pending: weakref.WeakKeyDictionary[Tx, list[_Event]] = weakref.WeakKeyDictionary()


def wake_key(user_type: str, user_id: str) -> str:
    """The key a user's feed readers wait on (published on the chat wake channel)."""
    return f"feed:{user_type}:{user_id}"


def add(
    tx: Tx, user_type: str, user_id: Any, event_type: str, now: datetime, session_id: Any = None, **detail: Any
) -> None:
    """Buffer one event for the user; written with the transaction's COMMIT (nothing when it rolls back)."""
    if not user_id:
        return
    assert user_type in USER_TYPES, user_type
    clean = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items()}
    event = _Event(user_type, str(user_id), event_type, str(session_id) if session_id else None, clean, now)
    events = _pending.get(tx)
    if events is None:
        events = _pending[tx] = []
        tx.before_commit("feed", _write)
    events.append(event)


def session_detail(row: Row, kind: str, end_reason: str | None) -> dict[str, Any]:
    """The detail of a `session` event: the status after `kind` and the deadlines that apply now."""
    timeout = timedelta(seconds=context.current().settings.pairing_timeout_seconds)
    searching = row["status"] == "searching"
    return {
        "kind": kind,
        "status": row["status"],
        "mitra_id": str(row["mitra_id"]) if row["mitra_id"] else None,
        "search_deadline_at": row["search_started_at"] + timeout if searching else None,
        "payment_deadline_at": row["payment_deadline_at"],
        "expires_at": row["expires_at"],
        "end_reason": end_reason,
    }


def offers_new(
    tx: Tx, session_id: Any, mitra_ids: Iterable[Any], now: datetime, search_started_at: datetime | None = None
) -> None:
    """An `offer_new` for each offered mitra: until when it may accept (the search's pairing deadline)."""
    started = search_started_at or now
    expires = started + timedelta(seconds=context.current().settings.pairing_timeout_seconds)
    for mitra_id in mitra_ids:
        add(tx, "mitra", mitra_id, OFFER_NEW, now, session_id, offer_expires_at=expires)


def offers_closed(tx: Tx, session_id: Any, mitra_ids: Iterable[Any], now: datetime) -> None:
    """An `offer_closed` for each mitra whose unanswered offer closed (taken, cancelled, expired)."""
    for mitra_id in mitra_ids:
        add(tx, "mitra", mitra_id, OFFER_CLOSED, now, session_id)


# ---- writing (the last statements before COMMIT) and waking (after it) ------------------------


def _lock_key(user_type: str, user_id: str) -> int:
    """A signed 64-bit advisory-lock key for the user's stream."""
    digest = hashlib.blake2b(f"feed:{user_type}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _write(tx: Tx) -> None:
    events = _pending.pop(tx, [])
    if not events:
        return
    users = sorted({(e.user_type, e.user_id) for e in events}, key=lambda u: _lock_key(*u))
    # unnest keeps the array's order, so the locks are taken in the one global (sorted) order.
    tx.rows(
        "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS t(k, n) ORDER BY n",
        keys=[_lock_key(*u) for u in users],
    )
    rows = [
        {
            "user_type": e.user_type,
            "user_id": e.user_id,
            "type": e.type,
            "session_id": e.session_id,
            "detail": e.detail,
            "created_at": e.created_at.isoformat(),
        }
        for e in events
    ]
    tx.execute(
        "INSERT INTO user_events (user_type, user_id, type, session_id, detail, created_at)"
        " SELECT r.user_type, r.user_id, r.type, r.session_id, COALESCE(r.detail, '{}'::jsonb), r.created_at"
        " FROM ROWS FROM (jsonb_to_recordset(CAST(:rows AS jsonb)) AS (user_type text, user_id uuid, type text,"
        "   session_id uuid, detail jsonb, created_at timestamptz))"
        " WITH ORDINALITY AS r(user_type, user_id, type, session_id, detail, created_at, n) ORDER BY r.n",
        rows=json.dumps(rows),
    )
    keys = [wake_key(*u) for u in users]
    tx.after_commit("feed", lambda: _wake(keys))


def _wake(keys: list[str]) -> None:
    """Publish each user's wake-up; best-effort (readers see the rows on their next poll)."""
    ctx = context.current()
    try:
        if ctx.settings.valkey_cluster or len(keys) == 1:
            for key in keys:
                ctx.valkey.publish(ctx.keys.chat_wake, key)
        else:  # a blast wakes up to 25 mitras: one round trip, not one each
            pipe = ctx.valkey.pipeline(transaction=False)
            for key in keys:
                pipe.publish(ctx.keys.chat_wake, key)
            pipe.execute()
    except VALKEY_ERRORS as exc:
        log.warning("feed wake publish failed", extra={"error": type(exc).__name__})


# ---- reading ------------------------------------------------------------------------------------


def to_json(row: Row) -> dict[str, Any]:
    """The public shape of an event."""
    return {
        "id": int(row["id"]),
        "type": row["type"],
        "session_id": str(row["session_id"]) if row["session_id"] else None,
        "detail": row["detail"],
        "created_at": row["created_at"].isoformat(),
    }


def read(tx: Tx, user_type: str, user_id: str, after: int | None, limit: int) -> dict[str, Any]:
    """The user's events with id > after, oldest first; `after` None: none, and the head to start from.

    `reset` is true when events after `after` may have been deleted by the retention (the app
    was away longer than it): the app rebuilds its state from the lists and goes on from
    `next_after`.
    """
    if after is None:
        # Wait out the user's writers in flight (their lock), then any id taken later is above
        # the newest id of all: the head is safe to go on from, though other users own it.
        tx.scalar("SELECT pg_advisory_xact_lock(:k)", k=_lock_key(user_type, user_id))
        head = tx.scalar("SELECT COALESCE(max(id), 0) FROM user_events")
        return {"events": [], "next_after": int(head), "reset": False}
    rows = tx.rows(
        "SELECT id, type, session_id, detail, created_at FROM user_events"
        " WHERE user_id = CAST(:u AS uuid) AND user_type = :t AND id > :after ORDER BY id LIMIT :n",
        u=user_id,
        t=user_type,
        after=after,
        n=limit,
    )
    floor = tx.scalar("SELECT min(id) FROM user_events")
    events = [to_json(r) for r in rows]
    return {
        "events": events,
        "next_after": events[-1]["id"] if events else after,
        "reset": floor is not None and after < int(floor) - 1,
    }


# The retention rule (shared.retention): a contiguous oldest prefix, so that every id below the
# oldest one kept is gone and `read` can tell an app its cursor fell into the deleted part.
DELETE_BATCH = (
    "DELETE FROM user_events WHERE id IN (SELECT id FROM user_events ORDER BY id LIMIT :n)"
    " AND id < COALESCE((SELECT min(o.id) FROM (SELECT id, created_at FROM user_events ORDER BY id LIMIT :n) o"
    "                    WHERE o.created_at >= :cutoff), 9223372036854775807)"
)
