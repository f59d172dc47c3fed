"""The session-expiry sweep's pass: move every overdue session to its final status.

- searching past PAIRING_TIMEOUT_SECONDS since its last (re)blast -> expired (customer pushed);
- pending_payment past payment_deadline_at -> expired;
- active past expires_at -> ended (end_reason 'expired').

Idempotent and safe to run concurrently: each batch is one statement that locks its rows
with FOR UPDATE SKIP LOCKED and re-checks the status, so a session moves (and is pushed, and
gets its event) exactly once however many passes overlap. Time is `ctx.now()` throughout.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.chat import events as chat
from shared.context import AppContext
from shared.db import Row
from shared.pairing import effects, store

ACTOR = "system:session-expiry"
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
                _, _, status, reason = store.EXPIRY_KINDS[kind]
                chat.system_messages(tx, (r["id"] for r in batch), status, now, end_reason=reason)
                tx.commit()
            moved.extend(batch)
            _after_commit(ctx, kind, batch)
            if len(batch) < BATCH:
                break
        counts[kind] = len(moved)
    return counts


def _after_commit(ctx: AppContext, kind: str, rows: list[Row]) -> None:
    """Mirror the freed capacity, then tell the customers (and mitras with open offers)."""
    _, _, status, reason = store.EXPIRY_KINDS[kind]
    effects.recompute(ctx, (r["mitra_id"] for r in rows))
    chat.wake_readers(ctx, *(r["id"] for r in rows))
    for r in rows:
        view: dict[str, Any] = {"id": r["id"], "status": status}
        effects.push(ctx, "customer", [r["customer_id"]], _PUSH_TYPES[kind], view, end_reason=reason)
        if r["mitra_id"]:
            effects.push(ctx, "mitra", [r["mitra_id"]], _PUSH_TYPES[kind], view, end_reason=reason)
        if r["lost"]:
            effects.push(ctx, "mitra", [str(m) for m in r["lost"]], "offer_closed", view)
