"""Rows of `payments` and `session_refunds`: the SQL lives here.

A payment's status moves pending -> paid | failed once, by a conditional UPDATE, so a
notification retried by the gateway, or racing a staff confirmation, settles it exactly once.
Timestamps come from the caller's clock (`ctx.now()`).
"""

from __future__ import annotations

from datetime import datetime

from shared.db import Row, Tx

COLUMNS = (
    "id, session_id, kind, minutes, amount_idr, provider, order_id, status, deadline_at, token, redirect_url,"
    " created_at, settled_at, settled_by, reason, provider_status"
)
ONE_PENDING_EXTENSION = "payments_one_pending_extension"


def insert(
    tx: Tx, session_id: str, kind: str, minutes: int, amount: int, provider: str, deadline: datetime, now: datetime
) -> Row:
    """A pending payment whose order id names the session (S-) or the extension (E-)."""
    row = tx.one(
        "WITH n AS (SELECT count(*) + 1 AS n FROM payments WHERE session_id = CAST(:s AS uuid) AND kind = :k)"  # noqa: S608
        " INSERT INTO payments"
        " (session_id, kind, minutes, amount_idr, provider, order_id, status, deadline_at, created_at)"
        " SELECT CAST(:s AS uuid), :k, :m, :a, :p,"
        "        CASE :k WHEN 'session' THEN 'S-' ELSE 'E-' END || :s || '-' || n.n, 'pending', :d, :now FROM n"
        f" RETURNING {COLUMNS}",
        s=session_id,
        k=kind,
        m=minutes,
        a=amount,
        p=provider,
        d=deadline,
        now=now,
    )
    assert row is not None
    return row


def set_checkout(tx: Tx, payment_id: str, token: str | None, redirect_url: str | None) -> None:
    tx.execute(
        "UPDATE payments SET token = :t, redirect_url = :u WHERE id = CAST(:id AS uuid)",
        id=payment_id,
        t=token,
        u=redirect_url,
    )


def by_order(tx: Tx, order_id: str, *, lock: bool = False) -> Row | None:
    suffix = " FOR UPDATE" if lock else ""
    return tx.one(f"SELECT {COLUMNS} FROM payments WHERE order_id = :o{suffix}", o=order_id)  # noqa: S608


def pending_of(tx: Tx, session_id: str, *, lock: bool = False) -> Row | None:
    """The session's payment still waiting (its own or an extension's), oldest first."""
    suffix = " FOR UPDATE" if lock else ""
    return tx.one(
        f"SELECT {COLUMNS} FROM payments WHERE session_id = CAST(:s AS uuid) AND status = 'pending'"  # noqa: S608
        f" ORDER BY created_at, id LIMIT 1{suffix}",
        s=session_id,
    )


def latest_of(tx: Tx, session_id: str) -> Row | None:
    return tx.one(
        f"SELECT {COLUMNS} FROM payments WHERE session_id = CAST(:s AS uuid)"  # noqa: S608
        " ORDER BY created_at DESC, id DESC LIMIT 1",
        s=session_id,
    )


def settle(
    tx: Tx, payment_id: str, status: str, actor: str, now: datetime, reason: str | None, provider_status: str | None
) -> Row | None:
    """pending -> paid | failed; None when it was no longer pending (a retry, or another path won)."""
    return tx.one(
        "UPDATE payments SET status = :st, settled_at = :now, settled_by = :actor, reason = :reason,"  # noqa: S608
        " provider_status = :ps WHERE id = CAST(:id AS uuid) AND status = 'pending'"
        f" RETURNING {COLUMNS}",
        id=payment_id,
        st=status,
        now=now,
        actor=actor,
        reason=reason,
        ps=provider_status,
    )


def fail_pending(tx: Tx, session_id: str, actor: str, reason: str, now: datetime) -> list[Row]:
    """Close every payment of the session still pending (the session left the state it paid for).

    The closed rows (order_id, provider): what to cancel at the provider after the commit.
    """
    return tx.rows(
        "UPDATE payments SET status = 'failed', settled_at = :now, settled_by = :actor, reason = :reason"
        " WHERE session_id = CAST(:s AS uuid) AND status = 'pending' RETURNING order_id, provider",
        s=session_id,
        now=now,
        actor=actor,
        reason=reason,
    )


def pending_near_deadline(tx: Tx, provider: str, after: datetime, before: datetime, limit: int) -> list[Row]:
    """Pending payments of `provider` whose deadline falls in (after, before], soonest first."""
    return tx.rows(
        f"SELECT {COLUMNS} FROM payments WHERE status = 'pending' AND provider = :p"  # noqa: S608
        " AND deadline_at > :after AND deadline_at <= :before ORDER BY deadline_at, id LIMIT :n",
        p=provider,
        after=after,
        before=before,
        n=limit,
    )


def fail_overdue(tx: Tx, session_id: str, now: datetime) -> int:
    """Close the session's pending payments whose deadline has passed (never payable any more)."""
    return tx.execute(
        "UPDATE payments SET status = 'failed', settled_at = :now, settled_by = 'system:deadline',"
        " reason = 'deadline_passed'"
        " WHERE session_id = CAST(:s AS uuid) AND status = 'pending' AND deadline_at <= :now",
        s=session_id,
        now=now,
    )


def record_refund(
    tx: Tx, session_id: str, amount: int, reason: str, now: datetime, payment_id: str | None = None
) -> bool:
    """One refund due (a payment is refunded at most once); False when it was already recorded or is 0."""
    if amount <= 0:
        return False
    return (
        tx.execute(
            "INSERT INTO session_refunds (session_id, payment_id, amount_idr, reason, created_at)"
            " VALUES (CAST(:s AS uuid), CAST(:p AS uuid), :a, :r, :now) ON CONFLICT (payment_id) DO NOTHING",
            s=session_id,
            p=payment_id,
            a=amount,
            r=reason,
            now=now,
        )
        == 1
    )


def refunds_of(tx: Tx, session_id: str) -> list[Row]:
    return tx.rows(
        "SELECT id, payment_id, amount_idr, reason, created_at, refunded_at, refunded_by FROM session_refunds"
        " WHERE session_id = CAST(:s AS uuid) ORDER BY created_at, id",
        s=session_id,
    )


def payments_of(tx: Tx, session_id: str) -> list[Row]:
    return tx.rows(
        f"SELECT {COLUMNS} FROM payments WHERE session_id = CAST(:s AS uuid) ORDER BY created_at, id",  # noqa: S608
        s=session_id,
    )


def mark_refunded(tx: Tx, session_id: str, refund_id: str, actor: str, now: datetime) -> Row | None:
    """A refund due -> refunded (once); None when it is not this session's or was refunded already."""
    return tx.one(
        "UPDATE session_refunds SET refunded_at = :now, refunded_by = :actor"
        " WHERE id = CAST(:r AS uuid) AND session_id = CAST(:s AS uuid) AND refunded_at IS NULL"
        " RETURNING id",
        r=refund_id,
        s=session_id,
        actor=actor,
        now=now,
    )
