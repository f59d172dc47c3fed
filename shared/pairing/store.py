"""Rows of `pairing_offers` and the accept's capacity check: the pairing service's own SQL.

The chat-session row itself (its columns, reads, locks and conditional UPDATEs) belongs to
shared.sessions.store; this module holds what only pairing asks: who was offered a session,
how they answered, who a re-blast must skip, and whether a mitra has room to accept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.availability.truth import effective_max_sql, holds_capacity_sql, under_capacity_sql
from shared.db import Row, Tx
from shared.sessions.store import insert_offers as insert_offers  # the one INSERT of offers (re-exported)


def offer_response(tx: Tx, session_id: str, mitra_id: str) -> tuple[bool, str | None]:
    """(offered, response) of this mitra's offer for this session."""
    row = tx.one(
        "SELECT response FROM pairing_offers WHERE session_id = CAST(:s AS uuid) AND mitra_id = CAST(:m AS uuid)",
        s=session_id,
        m=mitra_id,
    )
    return (row is not None, row["response"] if row else None)


def pending_offer_count(tx: Tx, session_id: str) -> int:
    return int(
        tx.scalar(
            "SELECT count(*) FROM pairing_offers WHERE session_id = CAST(:s AS uuid) AND response IS NULL",
            s=session_id,
        )
    )


def reblast_exclusions(tx: Tx, session_id: str) -> list[str]:
    """Mitras a re-blast must skip: excluded ones, and every offered mitra except those who only lost.

    A mitra who lost a race for this session (another mitra won, then the session was
    rerouted) never said no, so it may be offered again; one who declined, is still
    pending, or held the session before is skipped.
    """
    rows = tx.rows(
        "SELECT unnest(excluded_mitra_ids) AS m FROM chat_sessions WHERE id = CAST(:s AS uuid)"
        " UNION SELECT mitra_id FROM pairing_offers WHERE session_id = CAST(:s AS uuid)"
        "   AND (response IS NULL OR response <> 'lost')",
        s=session_id,
    )
    return [str(r["m"]) for r in rows]


# The maximum and the decision are the availability rule's own SQL (shared.availability.truth).
_OVERRIDE = "CAST(:override AS int)"
_CAPACITY_SQL = (
    f"SELECT used, {effective_max_sql(_OVERRIDE)} AS max, {under_capacity_sql('used', _OVERRIDE)} AS has_room"  # noqa: S608
    " FROM (SELECT count(*) AS used FROM chat_sessions"
    f"       WHERE mitra_id = CAST(:m AS uuid) AND {holds_capacity_sql('status')}) c"
)


def lock_mitra_capacity(tx: Tx, mitra_id: str) -> Row | None:
    """Lock the mitra row, then count its open sessions: {is_active, used, max, has_room}, or None.

    The row lock (FOR NO KEY UPDATE: it serializes this mitra's accepts but not the
    foreign-key checks of new offers) is taken before counting, so two concurrent accepts of
    different sessions by one mitra see each other's result and cannot both pass the check.
    """
    locked = tx.one(
        "SELECT is_active, max_concurrent_sessions FROM mitras WHERE id = CAST(:m AS uuid) FOR NO KEY UPDATE",
        m=mitra_id,
    )
    if locked is None:
        return None
    counts = tx.one(_CAPACITY_SQL, m=mitra_id, override=locked["max_concurrent_sessions"])
    assert counts is not None
    return {
        "is_active": locked["is_active"],
        "used": int(counts["used"]),
        "max": int(counts["max"]),
        "has_room": bool(counts["has_room"]),
    }


# ---- writes --------------------------------------------------------------------------------


def decline_offer(tx: Tx, session_id: str, mitra_id: str, now: datetime) -> bool:
    """Record a decline of an unanswered offer; False when it was already answered."""
    return (
        tx.execute(
            "UPDATE pairing_offers SET response = 'declined', responded_at = :now"
            " WHERE session_id = CAST(:s AS uuid) AND mitra_id = CAST(:m AS uuid) AND response IS NULL",
            s=session_id,
            m=mitra_id,
            now=now,
        )
        == 1
    )


def mitra_brief(tx: Tx, mitra_id: Any) -> dict[str, Any] | None:
    """{id, display_name} of the mitra holding a session (what its customer sees), None when none."""
    if not mitra_id:
        return None
    name = tx.scalar("SELECT display_name FROM mitras WHERE id = CAST(:m AS uuid)", m=str(mitra_id))
    return {"id": str(mitra_id), "display_name": name}
