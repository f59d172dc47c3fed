"""Exact deadlines: settle-on-read, and the session-expiry sweep's pass.

- searching past PAIRING_TIMEOUT_SECONDS since its last (re)blast -> expired (customer pushed);
- pending_payment past payment_deadline_at -> expired;
- active past expires_at -> ended (end_reason 'expired').

Idempotent and safe to run concurrently: each batch is one statement that locks its rows
with FOR UPDATE SKIP LOCKED and re-checks the status, so a session moves (and is pushed, and
gets its event) exactly once however many passes overlap. Time is `ctx.now()` throughout.

Deadlines are exact (docs/chat.md): every read and every transition first `settle`s the sessions
it touches, which runs the very same conditional update for those sessions only, so nobody
sees a session past its deadline in a live state and no transition applies to one; the
sweep still moves the sessions nobody touches.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from shared.context import AppContext
from shared.db import Row
from shared.sessions import effects, states, store

ACTOR = "system:session-expiry"
ACTOR_ON_ACCESS = "system:deadline"  # moved by a read or transition that found it overdue
BATCH = 500

_PUSH_TYPES = {
    "expired_searching": "session_expired",
    "expired_unpaid": "session_expired",
    "ended_active": "session_ended",
}


def expire_due_sessions(ctx: AppContext) -> dict[str, int]:
    """Expire/end every overdue session; counts per kind."""
    now = ctx.now()
    due_before = {
        "expired_searching": now - timedelta(seconds=ctx.settings.pairing_timeout_seconds),
        "expired_unpaid": now,
        "ended_active": now,
    }
    counts: dict[str, int] = {}
    for kind, cutoff in due_before.items():
        moved: list[Row] = []
        while True:
            with ctx.db.transaction() as tx:
                batch = store.expire_batch(tx, kind, cutoff, now, ACTOR, BATCH)
                _, _, status, reason = states.EXPIRY_KINDS[kind]
                store.system_messages(tx, (r["id"] for r in batch), status, now, end_reason=reason)
                tx.commit()
            moved.extend(batch)
            _after_commit(ctx, kind, batch)
            if len(batch) < BATCH:
                break
        counts[kind] = len(moved)
    return counts


def settle(ctx: AppContext, rows: Iterable[Row], now: datetime | None = None) -> bool:
    """Expire/end those of `rows` (SESSION_COLUMNS) whose deadline has passed at `now`; True if any moved.

    A row that is not due costs nothing (checked in Python against the same clock); due ones
    are moved by `store.expire_batch` limited to their ids, in a transaction of its own that
    commits before the caller goes on (so a transition that then fails with 409 does not roll
    the expiry back), followed by the sweep's own after-commit effects.
    """
    now = now or ctx.now()
    timeout = timedelta(seconds=ctx.settings.pairing_timeout_seconds)
    by_kind: dict[str, list[str]] = {}
    for row in rows:
        kind = states.due_kind(row, now, timeout)
        if kind is not None:
            by_kind.setdefault(kind, []).append(str(row["id"]))
    if not by_kind:
        return False
    moved: dict[str, list[Row]] = {}
    with ctx.db.transaction() as tx:
        # Kinds in one fixed order and rows by (deadline, id): concurrent settles lock alike, never crosswise.
        for kind, ids in sorted(by_kind.items(), key=lambda item: list(states.EXPIRY_KINDS).index(item[0])):
            cutoff = now - timeout if kind == "expired_searching" else now
            moved[kind] = store.expire_batch(tx, kind, cutoff, now, ACTOR_ON_ACCESS, len(ids), session_ids=ids)
            _, _, status, reason = states.EXPIRY_KINDS[kind]
            store.system_messages(tx, (r["id"] for r in moved[kind]), status, now, end_reason=reason)
        tx.commit()
    for kind, batch in moved.items():
        _after_commit(ctx, kind, batch)
    return True


def settle_one(ctx: AppContext, session_id: str, now: datetime | None = None) -> None:
    """`settle` the session with this id (nothing when it does not exist)."""
    with ctx.db.transaction() as tx:
        row = store.get(tx, session_id)
    if row is not None:
        settle(ctx, [row], now)


def _after_commit(ctx: AppContext, kind: str, rows: list[Row]) -> None:
    """Mirror the freed capacity, then tell the customers (and mitras with open offers)."""
    _, _, status, reason = states.EXPIRY_KINDS[kind]
    effects.recompute(ctx, (r["mitra_id"] for r in rows))
    effects.wake_readers(ctx, *(r["id"] for r in rows))
    for r in rows:
        view: dict[str, Any] = {"id": r["id"], "status": status}
        effects.push(ctx, "customer", [r["customer_id"]], _PUSH_TYPES[kind], view, end_reason=reason)
        if r["mitra_id"]:
            effects.push(ctx, "mitra", [r["mitra_id"]], _PUSH_TYPES[kind], view, end_reason=reason)
        if r["lost"]:
            effects.push(ctx, "mitra", [str(m) for m in r["lost"]], "offer_closed", view)
