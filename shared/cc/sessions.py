"""Chat sessions in the control center: a filtered, paged list, one session with its trail, and
its transcript (admins only; every read writes an audit row in the transaction that reads).

Reads settle first (shared.sessions.settle): a listed or viewed session past its deadline is
expired/ended by the same conditional update the sweep runs, before it is shown.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared import audit, paging
from shared.context import AppContext
from shared.db import Row
from shared.errors import NotFound, ValidationFailed
from shared.sessions import settle, states, store

STATUSES = states.STATUSES
_LIST_SQL = (
    f"SELECT {store.SESSION_COLUMNS},"  # noqa: S608 (constant columns)
    " (SELECT count(*) FROM pairing_offers po WHERE po.session_id = chat_sessions.id) AS offered_count,"
    f" {store.NAME_COLUMNS}"
    " FROM chat_sessions"
    " WHERE (CAST(:status AS text) IS NULL OR status = :status)"
    " AND (CAST(:mitra AS uuid) IS NULL OR mitra_id = CAST(:mitra AS uuid))"
    " AND (CAST(:customer AS uuid) IS NULL OR customer_id = CAST(:customer AS uuid))"
    " AND (CAST(:after_at AS timestamptz) IS NULL OR (requested_at, id) < (:after_at, CAST(:after_id AS uuid)))"
    " ORDER BY requested_at DESC, id DESC LIMIT :n"
)


def list_sessions(
    ctx: AppContext,
    limit: int,
    cursor: str | None,
    *,
    status: str | None = None,
    mitra_id: str | None = None,
    customer_id: str | None = None,
) -> dict[str, Any]:
    """Sessions newest first (by requested_at), filtered by status, mitra and/or customer."""
    params = {
        "status": status,
        "mitra": mitra_id,
        "customer": customer_id,
        "n": limit + 1,
        **paging.after("chat-sessions", cursor),
    }
    rows = ctx.db.rows(_LIST_SQL, **params)
    if settle.settle(ctx, rows):
        rows = ctx.db.rows(_LIST_SQL, **params)  # overdue rows moved: the filter may drop them now
    cut = paging.page("chat-sessions", rows, limit, lambda r: (r["requested_at"], r["id"]))
    return {
        "chat_sessions": [{**store.to_json(r, int(r["offered_count"])), **_names(r)} for r in cut.rows],
        "next_cursor": cut.next_cursor,
    }


def get_session(ctx: AppContext, session_id: str) -> dict[str, Any]:
    """One session with its event trail (oldest first) and its offers; 404 SESSION_NOT_FOUND."""
    settle.settle_one(ctx, session_id)
    with ctx.db.transaction() as tx:
        row = store.get(tx, session_id)
        if row is None:
            raise NotFound("chat session not found", code="SESSION_NOT_FOUND")
        events = store.events_of(tx, session_id)
        offers = store.offers_of(tx, session_id)
        names = store.party_names(tx, session_id)
    return {
        **store.to_json(row, len(offers)),
        **_names(names),
        "excluded_mitra_ids": [str(m) for m in row["excluded_mitra_ids"]],
        "events": [_event(e) for e in events],
        "offers": [
            {
                "mitra_id": str(o["mitra_id"]),
                "offered_at": o["offered_at"].isoformat(),
                "responded_at": o["responded_at"].isoformat() if o["responded_at"] else None,
                "response": o["response"],
            }
            for o in offers
        ],
    }


def _event(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "actor": row["actor"],
        "at": row["at"].isoformat(),
        "detail": row["detail"],
    }


TRANSCRIPT_READ = "chat_session.transcript_read"  # the audit action of one read
TRANSCRIPT_LIST = "chat-session-messages"  # the cursor tag


def transcript(ctx: AppContext, session_id: str, limit: int, cursor: str | None, actor: str) -> dict[str, Any]:
    """A page of the session's messages, oldest first, and the audit row of this read.

    The messages are read and the audit row written in one transaction: a read whose audit
    row cannot be written fails and shows nothing. The cursor names its session, so a cursor
    of another session's transcript is refused (400 naming `cursor`).
    """
    key = paging.decode(TRANSCRIPT_LIST, cursor, (lambda v: str(uuid.UUID(v)), paging.row_id))
    if key is not None and key[0] != session_id:
        raise ValidationFailed("cursor", "is not a cursor of this session's transcript")
    with ctx.db.transaction() as tx:
        if store.get(tx, session_id) is None:
            raise NotFound("chat session not found", code="SESSION_NOT_FOUND")
        rows = store.messages_after(tx, session_id, key[1] if key else 0, limit + 1)
        cut = paging.page(TRANSCRIPT_LIST, rows, limit, lambda r: (session_id, r["id"]))
        ids = [int(r["id"]) for r in cut.rows]
        detail = {"count": len(ids), "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None}
        audit.record(tx, actor, TRANSCRIPT_READ, "chat_session", session_id, ctx.now(), detail)
        tx.commit()
    return {
        "session_id": session_id,
        "messages": [store.message_json(r) for r in cut.rows],
        "next_cursor": cut.next_cursor,
    }


def _names(row: Row) -> dict[str, Any]:
    """The parties' display names, for staff (a mitra's name is null until one accepted)."""
    return {"customer_name": row["customer_name"], "mitra_name": row["mitra_name"]}
