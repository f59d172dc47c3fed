"""The chat-session state machine: statuses, transitions and deadlines (docs/pairing.md).

Pure data and functions, no SQL: each conditional UPDATE in shared.sessions.store enforces
its row of TRANSITIONS in SQL; the services check it first for a clear error.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.availability.truth import CAPACITY_STATUSES as CAPACITY_STATUSES  # re-exported: part of the state machine
from shared.db import Row

# CAPACITY_STATUSES (pending_payment, active: a mitra holds the session) is the capacity rule's.
OPEN_STATUSES = ("searching", *CAPACITY_STATUSES)
FINAL_STATUSES = ("ended", "expired", "cancelled")
STATUSES = (*OPEN_STATUSES, *FINAL_STATUSES)
# A booked session (extensions included) lasts at most a day: pairing checks it when an extension
# is asked for, payments again when its payment would move expires_at.
MAX_DURATION_MINUTES = 1440


def status_in_sql(status: str, statuses: tuple[str, ...]) -> str:
    """SQL that the `status` column is one of these constant statuses."""
    assert set(statuses) <= set(STATUSES), statuses
    return f"{status} IN ({', '.join(repr(s) for s in statuses)})"


# action -> (the statuses it leaves, the status it reaches).
# accept reaches `active` instead when the session was already paid (a rerouted paid session).
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "accept": (("searching",), "pending_payment"),
    "decline": (("searching",), "searching"),
    "cancel": (("searching",), "cancelled"),
    "pay": (("pending_payment",), "active"),
    "extend": (("active",), "active"),
    "end": (CAPACITY_STATUSES, "ended"),
    "reroute": (CAPACITY_STATUSES, "searching"),
    "expire": (("searching", "pending_payment"), "expired"),  # an active session's time up: "end"
}


def next_status(action: str, current: str | None, *, paid: bool = False) -> str | None:
    """The status `action` moves a session in `current` to, or None when the state machine forbids it."""
    leaves, reaches = TRANSITIONS[action]
    if current not in leaves:
        return None
    return "active" if action == "accept" and paid else reaches


# A staff block of the customer ends its sessions with CUSTOMER_BLOCKED: the row, its event
# and every staff view keep it, but the mitra is never told the customer was blocked. What
# reaches the mitra (push, system message, its lists) says CLOSED_BY_SUPPORT instead.
CUSTOMER_BLOCKED = "customer_blocked"
CLOSED_BY_SUPPORT = "closed_by_support"


def end_reason_for_mitra(reason: str | None) -> str | None:
    """The end reason as the session's mitra may see it (a block is shown as CLOSED_BY_SUPPORT)."""
    return CLOSED_BY_SUPPORT if reason == CUSTOMER_BLOCKED else reason


# Deadlines, per expiry kind: the status it leaves, the deadline column, the status and end_reason it sets.
EXPIRY_KINDS: dict[str, tuple[str, str, str, str]] = {
    "expired_searching": ("searching", "search_started_at", "expired", "pairing_timeout"),
    "expired_unpaid": ("pending_payment", "payment_deadline_at", "expired", "payment_timeout"),
    "ended_active": ("active", "expires_at", "ended", "expired"),
}


def due_kind(row: Row, now: datetime, pairing_timeout: timedelta) -> str | None:
    """The expiry kind whose deadline this session (a row of SESSION_COLUMNS) has reached, or None.

    The same conditions as `store.expire_batch`: a deadline reached at exactly `now` is due.
    """
    status = row["status"]
    if status == "searching" and row["search_started_at"] <= now - pairing_timeout:
        return "expired_searching"
    if status == "pending_payment" and row["payment_deadline_at"] is not None and row["payment_deadline_at"] <= now:
        return "expired_unpaid"
    if status == "active" and row["expires_at"] is not None and row["expires_at"] <= now:
        return "ended_active"
    return None


def next_deadline(row: Row, pairing_timeout: timedelta) -> datetime | None:
    """When this session (a row of SESSION_COLUMNS) next moves by itself (`due_kind`), None when never."""
    status = row["status"]
    if status == "searching":
        return row["search_started_at"] + pairing_timeout  # type: ignore[no-any-return]
    if status == "pending_payment":
        return row["payment_deadline_at"]  # type: ignore[no-any-return]
    if status == "active":
        return row["expires_at"]  # type: ignore[no-any-return]
    return None
