"""The chat session's SQL: the `chat_sessions` row (its columns, reads, locks and every
conditional UPDATE) and its timeline (`chat_session_events`, and the conversation's messages:
the one INSERT into `chat_messages`, with the transitions' `system` messages).

Closing a session also closes its unanswered `pairing_offers` (they are lost, not declined),
and the one INSERT of offers lives here too (a mitra going online is offered running searches
by shared.sessions.online, below pairing); the rest of that table is shared.pairing.store.

Every state change is a conditional UPDATE (`... WHERE status = :expected RETURNING`), so two
requests racing for the same transition cannot both win: Postgres decides, not Python.
Timestamps come from the caller's clock (`ctx.now()`), never from the database's `now()`,
so the sweep and the transitions agree under an injected clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from shared import feed
from shared.db import Row, Tx
from shared.sessions.states import (
    CAPACITY_STATUSES,
    EXPIRY_KINDS,
    OPEN_STATUSES,
    end_reason_for_mitra,
    status_in_sql,
)

SESSION_COLUMNS = (
    "id, customer_id, mitra_id, status, duration_minutes, requested_at, search_started_at, accepted_at,"
    " payment_deadline_at, paid_at, started_at, expires_at, ended_at, end_reason, extension_count,"
    " excluded_mitra_ids, amount_idr, paid_seconds_left"  # the last two: money rules (docs/payments.md)
)
ONE_OPEN_PER_CUSTOMER = "chat_sessions_one_open_per_customer"
_OPEN = status_in_sql("status", OPEN_STATUSES)
_HELD = status_in_sql("status", CAPACITY_STATUSES)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def to_json(row: Row, offered_count: int) -> dict[str, Any]:
    """The public shape of a chat session."""
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "customer_id": str(row["customer_id"]),
        "mitra_id": str(row["mitra_id"]) if row["mitra_id"] else None,
        "duration_minutes": row["duration_minutes"],
        "requested_at": _iso(row["requested_at"]),
        "search_started_at": _iso(row["search_started_at"]),
        "accepted_at": _iso(row["accepted_at"]),
        "payment_deadline_at": _iso(row["payment_deadline_at"]),
        "paid_at": _iso(row["paid_at"]),
        "started_at": _iso(row["started_at"]),
        "expires_at": _iso(row["expires_at"]),
        "ended_at": _iso(row["ended_at"]),
        "end_reason": row["end_reason"],
        "extension_count": row["extension_count"],
        "offered_count": offered_count,
        "amount_idr": row["amount_idr"],  # what the booked minutes cost (docs/payments.md)
    }


# ---- reads ---------------------------------------------------------------------------------


def get(tx: Tx, session_id: str, *, lock: bool = False) -> Row | None:
    """One session (FOR UPDATE when `lock`), or None."""
    suffix = " FOR UPDATE" if lock else ""
    return tx.one(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE id = CAST(:id AS uuid){suffix}",  # noqa: S608 (constant SQL)
        id=session_id,
    )


def held_by_mitra(tx: Tx, mitra_id: str) -> list[Row]:
    """The sessions the mitra holds (pending_payment/active), unlocked (to settle before closing them)."""
    return tx.rows(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE mitra_id = CAST(:m AS uuid) AND {_HELD}",  # noqa: S608
        m=mitra_id,
    )


def open_session_of(tx: Tx, customer_id: str) -> Row | None:
    """The customer's open session (searching, pending_payment or active), if any."""
    return tx.one(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions"  # noqa: S608 (constant SQL)
        f" WHERE customer_id = CAST(:c AS uuid) AND {_OPEN}",
        c=customer_id,
    )


def live_of(tx: Tx, user_type: str, user_id: str) -> list[Row]:
    """The sessions whose deadlines concern this user: a customer's open session; a mitra's held
    sessions and the searching sessions with an unanswered offer to it."""
    if user_type == "customer":
        row = open_session_of(tx, user_id)
        return [row] if row is not None else []
    return tx.rows(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions"  # noqa: S608 (constant SQL)
        " WHERE mitra_id = CAST(:m AS uuid) AND status IN ('pending_payment', 'active')"
        " UNION ALL"
        f" SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE status = 'searching' AND id IN"
        "   (SELECT session_id FROM pairing_offers WHERE mitra_id = CAST(:m AS uuid) AND response IS NULL)",
        m=user_id,
    )


def offered_count(tx: Tx, session_id: str) -> int:
    """How many mitras this session has been offered to (every blast)."""
    return int(tx.scalar("SELECT count(*) FROM pairing_offers WHERE session_id = CAST(:id AS uuid)", id=session_id))


def status_counts_of_customer(tx: Tx, customer_id: str) -> dict[str, int]:
    """How many sessions the customer has in each status (statuses with none are absent)."""
    rows = tx.rows(
        "SELECT status, count(*) AS n FROM chat_sessions WHERE customer_id = CAST(:c AS uuid) GROUP BY status",
        c=customer_id,
    )
    return {r["status"]: int(r["n"]) for r in rows}


def lock_for_messages(tx: Tx, session_id: str) -> Row | None:
    """Lock the session row (serializes this session's inserts) and return its parties and status.

    FOR NO KEY UPDATE conflicts with itself and with the transitions' UPDATEs, but not with
    the KEY SHARE locks of foreign-key checks.
    """
    return tx.one(
        "SELECT id, customer_id, mitra_id, status, expires_at FROM chat_sessions"
        " WHERE id = CAST(:id AS uuid) FOR NO KEY UPDATE",
        id=session_id,
    )


def offers_of(tx: Tx, session_id: str) -> list[Row]:
    """Every offer of the session, oldest first (the control center's view of a session)."""
    return tx.rows(
        "SELECT mitra_id, offered_at, responded_at, response FROM pairing_offers"
        " WHERE session_id = CAST(:s AS uuid) ORDER BY offered_at, mitra_id",
        s=session_id,
    )


# ---- writes --------------------------------------------------------------------------------


def insert_session(tx: Tx, customer_id: str, duration_minutes: int, now: datetime, amount_idr: int) -> Row:
    """A new searching session (raises the unique violation ONE_OPEN_PER_CUSTOMER if one is open)."""
    row = tx.one(
        "INSERT INTO chat_sessions (customer_id, status, duration_minutes, requested_at, search_started_at, amount_idr)"  # noqa: S608
        f" VALUES (CAST(:c AS uuid), 'searching', :d, :now, :now, :a) RETURNING {SESSION_COLUMNS}",
        c=customer_id,
        d=duration_minutes,
        now=now,
        a=amount_idr,
    )
    assert row is not None
    return row


def accept(tx: Tx, session_id: str, mitra_id: str, now: datetime, payment_deadline: datetime) -> Row | None:
    """searching -> pending_payment (or straight to active when already paid: a rerouted paid session).

    The conditional UPDATE is the race arbiter: of many concurrent accepts exactly one
    finds `status = 'searching'`; the others wait for its row lock, then match nothing.
    """
    return tx.one(
        "UPDATE chat_sessions SET mitra_id = CAST(:m AS uuid), accepted_at = :now,"  # noqa: S608 (constant SQL)
        " status = CASE WHEN paid_at IS NULL THEN 'pending_payment' ELSE 'active' END,"
        " payment_deadline_at = CASE WHEN paid_at IS NULL THEN CAST(:deadline AS timestamptz) END,"
        " started_at = CASE WHEN paid_at IS NOT NULL THEN CAST(:now AS timestamptz) END,"
        # Money rule (docs/payments.md): a rerouted paid session gives the next mitra the paid
        # time it had left (paid_seconds_left), not a fresh full duration.
        " expires_at = CASE WHEN paid_at IS NOT NULL THEN CAST(:now AS timestamptz)"
        "   + coalesce(make_interval(secs => paid_seconds_left), make_interval(mins => duration_minutes)) END,"
        " paid_seconds_left = NULL"
        f" WHERE id = CAST(:id AS uuid) AND status = 'searching' RETURNING {SESSION_COLUMNS}",
        id=session_id,
        m=mitra_id,
        now=now,
        deadline=payment_deadline,
    )


def confirm_payment(tx: Tx, session_id: str, now: datetime) -> Row | None:
    """pending_payment (deadline not passed) -> active for duration_minutes from now."""
    return tx.one(
        "UPDATE chat_sessions SET status = 'active', paid_at = :now, started_at = :now,"  # noqa: S608 (constant SQL)
        " expires_at = CAST(:now AS timestamptz) + make_interval(mins => duration_minutes)"
        " WHERE id = CAST(:id AS uuid) AND status = 'pending_payment' AND payment_deadline_at > :now"
        f" RETURNING {SESSION_COLUMNS}",
        id=session_id,
        now=now,
    )


def extend(tx: Tx, session_id: str, minutes: int, now: datetime, max_total_minutes: int) -> Row | None:
    """active (and not yet past expires_at) -> expires_at and duration_minutes moved by `minutes`."""
    return tx.one(
        "UPDATE chat_sessions SET expires_at = expires_at + make_interval(mins => CAST(:n AS int)),"  # noqa: S608 (constant SQL)
        " duration_minutes = duration_minutes + CAST(:n AS int), extension_count = extension_count + 1"
        " WHERE id = CAST(:id AS uuid) AND status = 'active' AND expires_at > :now"
        f" AND duration_minutes + CAST(:n AS int) <= :max RETURNING {SESSION_COLUMNS}",
        id=session_id,
        n=minutes,
        now=now,
        max=max_total_minutes,
    )


def finish(
    tx: Tx, session_id: str, expected: tuple[str, ...], status: str, end_reason: str, now: datetime
) -> Row | None:
    """One of `expected` -> a final status (ended, cancelled, expired) with ended_at and end_reason."""
    return tx.one(
        "UPDATE chat_sessions SET status = :status, ended_at = :now, end_reason = :reason"  # noqa: S608 (constant SQL)
        " WHERE id = CAST(:id AS uuid) AND status = ANY(CAST(:expected AS text[]))"
        f" RETURNING {SESSION_COLUMNS}",
        id=session_id,
        expected=list(expected),
        status=status,
        reason=end_reason,
        now=now,
    )


def reroute(tx: Tx, session_id: str, from_status: str, previous_mitra: str, now: datetime) -> Row | None:
    """pending_payment/active held by `previous_mitra` -> searching again, that mitra excluded.

    paid_at is kept: a paid session that is rerouted goes straight to active on the next
    accept. The pairing timeout restarts (search_started_at).
    """
    return tx.one(
        "UPDATE chat_sessions SET status = 'searching', mitra_id = NULL, search_started_at = :now,"  # noqa: S608 (constant SQL)
        " accepted_at = NULL, payment_deadline_at = NULL, started_at = NULL, expires_at = NULL,"
        # Money rule (docs/payments.md): an active paid session keeps the paid time it has left.
        " paid_seconds_left = CASE WHEN status = 'active' THEN"
        "   greatest(0, floor(extract(epoch FROM expires_at - CAST(:now AS timestamptz)))) END,"
        " excluded_mitra_ids = array_append(excluded_mitra_ids, CAST(:m AS uuid))"
        " WHERE id = CAST(:id AS uuid) AND status = :from_status AND mitra_id = CAST(:m AS uuid)"
        f" RETURNING {SESSION_COLUMNS}",
        id=session_id,
        from_status=from_status,
        m=previous_mitra,
        now=now,
    )


def restart_search(tx: Tx, session_id: str, now: datetime) -> Row | None:
    """A searching session re-blasted: the pairing timeout counts from now."""
    return tx.one(
        f"UPDATE chat_sessions SET search_started_at = :now"  # noqa: S608 (constant SQL)
        f" WHERE id = CAST(:id AS uuid) AND status = 'searching' RETURNING {SESSION_COLUMNS}",
        id=session_id,
        now=now,
    )


def insert_offers(
    tx: Tx, session_id: str, mitra_ids: list[str], now: datetime, search_started_at: datetime | None = None
) -> int:
    """Offer the session to each mitra; an offer that was lost (not declined) is reopened.

    Each mitra actually offered gets an `offer_new` feed event (docs/events.md), which expires
    with the search (`search_started_at`, now for a new blast).
    """
    offered = tx.rows(
        "INSERT INTO pairing_offers (session_id, mitra_id, offered_at)"
        " SELECT CAST(:s AS uuid), m, :now FROM unnest(CAST(:ids AS uuid[])) AS m"
        " ON CONFLICT (session_id, mitra_id) DO UPDATE"
        "   SET offered_at = EXCLUDED.offered_at, response = NULL, responded_at = NULL"
        "   WHERE pairing_offers.response = 'lost'"
        " RETURNING mitra_id",
        s=session_id,
        ids=mitra_ids,
        now=now,
    )
    feed.offers_new(tx, session_id, sorted(str(r["mitra_id"]) for r in offered), now, search_started_at)
    return len(offered)


def running_searches_for(tx: Tx, mitra_id: str, started_after: datetime, limit: int) -> list[Row]:
    """Searching sessions still within their pairing deadline that this mitra was never offered
    and is not excluded from, oldest search first, locked (others' locked rows are skipped)."""
    return tx.rows(
        "SELECT id, search_started_at FROM chat_sessions s"
        " WHERE s.status = 'searching' AND s.search_started_at > :after"
        "   AND NOT (CAST(:m AS uuid) = ANY(s.excluded_mitra_ids))"
        "   AND NOT EXISTS (SELECT 1 FROM pairing_offers o WHERE o.session_id = s.id AND o.mitra_id = CAST(:m AS uuid))"
        " ORDER BY s.search_started_at, s.id LIMIT :n FOR UPDATE SKIP LOCKED",
        m=mitra_id,
        after=started_after,
        n=limit,
    )


def close_offers(tx: Tx, session_id: str, now: datetime, winner: str | None = None) -> list[str]:
    """Mark the winner's offer accepted and every unanswered one lost; the mitras who lost."""
    rows = tx.rows(
        "UPDATE pairing_offers SET responded_at = :now,"
        " response = CASE WHEN mitra_id = CAST(:w AS uuid) THEN 'accepted' ELSE 'lost' END"
        " WHERE session_id = CAST(:s AS uuid) AND (response IS NULL OR mitra_id = CAST(:w AS uuid))"
        " RETURNING mitra_id, response",
        s=session_id,
        w=winner,
        now=now,
    )
    lost = [str(r["mitra_id"]) for r in rows if r["response"] == "lost"]
    feed.offers_closed(tx, session_id, lost, now)
    return lost


# ---- the session-expiry sweep ---------------------------------------------------------------


def expire_batch(
    tx: Tx,
    kind: str,
    due_before: datetime,
    now: datetime,
    actor: str,
    batch: int,
    *,
    session_ids: list[str] | None = None,
) -> list[Row]:
    """Move up to `batch` due sessions of `kind` to their final status, with events; the moved rows.

    FOR UPDATE SKIP LOCKED lets overlapping sweeps split the work instead of queueing, and a
    row a user transition holds is simply left for the next pass; the status re-check in the
    UPDATE keeps every session moving once. Each row carries `lost`: the mitras whose
    unanswered offers were closed.

    With `session_ids` the same update is limited to those sessions and waits for their row
    locks instead of skipping them (a read or a transition settling the sessions it is about
    to show or change must see the outcome of a concurrent transition, not skip it).
    """
    from_status, column, to_status, reason = EXPIRY_KINDS[kind]
    lock = "FOR UPDATE SKIP LOCKED" if session_ids is None else "FOR UPDATE"
    moved = tx.rows(
        f"WITH due AS (SELECT id FROM chat_sessions WHERE status = :from_status AND {column} <= :due_before"  # noqa: S608
        "             AND (CAST(:only AS uuid[]) IS NULL OR id = ANY(CAST(:only AS uuid[])))"
        f"             ORDER BY {column}, id LIMIT :batch {lock}),"
        " done AS (UPDATE chat_sessions s SET status = :to_status, ended_at = :now, end_reason = :reason"
        "          FROM due WHERE s.id = due.id AND s.status = :from_status"
        "          RETURNING s.id, s.customer_id, s.mitra_id),"
        " ev AS (INSERT INTO chat_session_events (session_id, type, actor, at, detail)"
        "        SELECT id, :to_status, :actor, :now, jsonb_build_object('reason', CAST(:reason AS text)) FROM done),"
        " lost AS (UPDATE pairing_offers p SET response = 'lost', responded_at = :now"
        "          FROM done WHERE p.session_id = done.id AND p.response IS NULL RETURNING p.session_id, p.mitra_id)"
        " SELECT d.id, d.customer_id, d.mitra_id,"
        "        ARRAY(SELECT l.mitra_id FROM lost l WHERE l.session_id = d.id) AS lost"
        " FROM done d",
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        due_before=due_before,
        now=now,
        actor=actor,
        batch=batch,
        only=session_ids,
    )
    for row in moved:
        feed.offers_closed(tx, row["id"], row["lost"], now)
    return moved


# ---- the timeline: chat_session_events and the conversation's messages ----------------------
#
# Every transition appends an event, and the ones a party sees also a `system` message in the
# conversation. Both are written inside the transition's own transaction, right after the
# conditional UPDATE that holds the session's row lock, so they commit with the transition (or
# not at all) and the message takes its place in the session's id order.
#
# Ordering rule (docs/chat.md): every insert into one session's messages happens while its
# transaction holds that session's row lock (a send takes `lock_for_messages`; a transition's
# conditional UPDATE holds it already), so within a session ids are allocated and committed in
# the same order. A reader of `id > after` therefore never skips an id that commits later.
# `append_message` is the one INSERT into `chat_messages`.

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


# The parties' display names of a `chat_sessions` row, for staff views (two primary-key lookups).
NAME_COLUMNS = (
    "(SELECT display_name FROM customers c WHERE c.id = chat_sessions.customer_id) AS customer_name,"
    " (SELECT display_name FROM mitras m WHERE m.id = chat_sessions.mitra_id) AS mitra_name"
)


def party_names(tx: Tx, session_id: str) -> Row:
    """{customer_name, mitra_name} of one session (staff views)."""
    row = tx.one(
        f"SELECT {NAME_COLUMNS} FROM chat_sessions WHERE id = CAST(:id AS uuid)",  # noqa: S608 (constant SQL)
        id=session_id,
    )
    return row or {"customer_name": None, "mitra_name": None}


def message_json(row: Row) -> dict[str, Any]:
    """The public shape of a message (openapi ChatMessage; no names: who a sender is comes from
    the session), for the parties' chat and the staff transcript alike."""
    return {
        "id": int(row["id"]),
        "session_id": str(row["session_id"]),
        "sender_type": row["sender_type"],
        "sender_id": str(row["sender_id"]) if row["sender_id"] else None,
        "client_message_id": str(row["client_message_id"]) if row["client_message_id"] else None,
        "body": row["body"],
        "detail": row["detail"],
        "created_at": row["created_at"].isoformat(),
    }


def messages_after(tx: Tx, session_id: str, after_id: int, limit: int) -> list[Row]:
    """Up to `limit` messages of the session with id > after_id, oldest first."""
    return tx.rows(
        f"SELECT {MESSAGE_COLUMNS} FROM chat_messages"  # noqa: S608 (constant SQL)
        " WHERE session_id = CAST(:s AS uuid) AND id > :after ORDER BY id LIMIT :n",
        s=session_id,
        after=after_id,
        n=limit,
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
    """Append the system message announcing `kind`, and its feed event; the caller's UPDATE holds the session row."""
    assert kind in KINDS, kind
    clean = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items() if v is not None}
    append_message(tx, str(session_id), "system", None, None, kind, now, clean)
    feed_session(tx, session_id, kind, now)


def feed_session(
    tx: Tx, session_id: Any, kind: str, now: datetime, *, also_mitras: Iterable[Any] = (), customer: bool = True
) -> None:
    """A `session` event (docs/events.md) for the session's customer and mitra, as this transaction left it.

    Every transition a party sees writes one through `system_message`; `also_mitras` are told
    too (the mitra a reroute took the session from), and with `customer` False only they are.
    The mitra reads the end reason as it may.
    """
    row = get(tx, str(session_id))
    if row is None:
        return
    if customer:
        detail = feed.session_detail(row, kind, row["end_reason"])
        feed.add(tx, "customer", row["customer_id"], feed.SESSION, now, session_id, **detail)
    mitra_detail = feed.session_detail(row, kind, end_reason_for_mitra(row["end_reason"]))
    mitras = (*also_mitras,) if not customer else (row["mitra_id"], *also_mitras)
    for mitra_id in sorted({str(m) for m in mitras if m}):
        feed.add(tx, "mitra", mitra_id, feed.SESSION, now, session_id, **mitra_detail)


def system_messages(tx: Tx, session_ids: Iterable[Any], kind: str, now: datetime, **detail: Any) -> None:
    """The same system message for each session of a batch (the expiry sweep)."""
    for session_id in session_ids:
        system_message(tx, session_id, kind, now, **detail)


# ---- closing open sessions: a blocked or deleted customer, a deactivated mitra, staff --------


def close_open_of_customer(tx: Tx, customer_id: str, actor: str, reason: str, now: datetime) -> list[Row]:
    """End every open session of the customer inside the caller's transaction; the closed rows.

    searching -> cancelled (its open offers lost), pending_payment/active -> ended, each with
    `reason` and an event; the system message (which the mitra reads) carries the reason as
    the mitra may see it (`states.end_reason_for_mitra`). Each returned row carries `lost` (mitras whose
    offer closed) and `from_status` (its status before). Run `effects.after_closed` once the caller has committed.
    """
    rows = tx.rows(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions"  # noqa: S608 (constant SQL)
        f" WHERE customer_id = CAST(:c AS uuid) AND {_OPEN}"
        " FOR UPDATE",
        c=customer_id,
    )
    return _close_each(tx, rows, actor, reason, now)


def close_held_by_mitra(tx: Tx, mitra_id: str, actor: str, reason: str, now: datetime) -> list[Row]:
    """End every session the mitra holds (pending_payment/active) inside the caller's transaction.

    The same closing as `close_open_of_customer` (a mitra deactivated mid-session); the caller
    holds the mitra's row lock, taken before these session rows as accept takes them.
    """
    rows = tx.rows(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions"  # noqa: S608 (constant SQL)
        f" WHERE mitra_id = CAST(:m AS uuid) AND {_HELD} ORDER BY id FOR UPDATE",
        m=mitra_id,
    )
    return _close_each(tx, rows, actor, reason, now)


def close_one(tx: Tx, session_id: str, actor: str, reason: str, now: datetime, **detail: Any) -> Row | None:
    """Close one open session (staff force-end) as `close_open_of_customer` closes each; None when not open.

    `detail` is added to its event (the staff's reason), never to the system message.
    """
    rows = tx.rows(
        f"SELECT {SESSION_COLUMNS} FROM chat_sessions"  # noqa: S608 (constant SQL)
        f" WHERE id = CAST(:id AS uuid) AND {_OPEN} FOR UPDATE",
        id=session_id,
    )
    closed = _close_each(tx, rows, actor, reason, now, detail)
    return closed[0] if closed else None


def _close_each(
    tx: Tx, rows: list[Row], actor: str, reason: str, now: datetime, detail: dict[str, Any] | None = None
) -> list[Row]:
    closed: list[Row] = []
    for current in rows:
        session_id = str(current["id"])
        searching = current["status"] == "searching"
        row = finish(tx, session_id, (current["status"],), "cancelled" if searching else "ended", reason, now)
        if row is None:
            continue
        lost = close_offers(tx, session_id, now)
        record_event(tx, session_id, row["status"], actor, now, {"reason": reason, **(detail or {})})
        system_message(tx, session_id, row["status"], now, end_reason=end_reason_for_mitra(reason))
        closed.append({**row, "lost": lost, "from_status": current["status"]})
    return closed
