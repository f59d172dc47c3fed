"""The Apple refresh tokens kept for revocation (table `apple_tokens`, whose SQL lives here).

A revocation is queued (`revoke_after` set, the customer unlinked from the row) in the transaction
that deletes the account or withdraws Apple, and tried right after the commit; a failure is retried
by every pass of the session-expiry sweep (`revoke_due`) with a growing back-off, and never blocks
or undoes the change that queued it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from shared.auth import apple
from shared.context import AppContext
from shared.db import Tx

log = logging.getLogger(__name__)

REVOKE_BATCH = 50
MAX_BACKOFF = timedelta(hours=6)


def keep(tx: Tx, customer_id: str, client_id: str, sealed: bytes) -> None:
    """Store (or replace) the customer's live Apple refresh token, already sealed."""
    tx.execute(
        "INSERT INTO apple_tokens (customer_id, client_id, refresh_token_sealed) VALUES (CAST(:c AS uuid), :k, :t)"
        " ON CONFLICT (customer_id) WHERE revoke_after IS NULL"
        " DO UPDATE SET client_id = EXCLUDED.client_id, refresh_token_sealed = EXCLUDED.refresh_token_sealed,"
        " created_at = now(), revoke_attempts = 0",
        c=customer_id,
        k=client_id,
        t=sealed,
    )


def last_grant_at(ctx: AppContext, customer_id: str) -> datetime | None:
    """When the customer's live token was granted (their last Apple sign-in with a code)."""
    at: datetime | None = ctx.db.scalar(
        "SELECT created_at FROM apple_tokens WHERE customer_id = CAST(:c AS uuid) AND revoke_after IS NULL",
        c=customer_id,
    )
    return at


def forget(tx: Tx, customer_id: str) -> None:
    """Drop the customer's live token: Apple itself ended the authorization, nothing to revoke."""
    tx.execute("DELETE FROM apple_tokens WHERE customer_id = CAST(:c AS uuid) AND revoke_after IS NULL", c=customer_id)


def queue_revocation(tx: Tx, customer_id: str, now: datetime) -> int | None:
    """Inside the caller's transaction: the customer's Apple token becomes due for revocation (its id)."""
    queued = tx.scalar(
        "UPDATE apple_tokens SET customer_id = NULL, revoke_after = :now"
        " WHERE customer_id = CAST(:c AS uuid) AND revoke_after IS NULL RETURNING id",
        c=customer_id,
        now=now,
    )
    return int(queued) if queued is not None else None


def revoke_due(ctx: AppContext, limit: int = REVOKE_BATCH, only: int | None = None) -> dict[str, int]:
    """Revoke at Apple the tokens whose revocation is due (or just the row `only`); a failure waits
    longer each time, and the first failure ends the pass (Apple is down: do not hammer it).

    Each row is claimed with SKIP LOCKED in a short transaction and its next try pushed back
    before Apple is called, so two passes never revoke the same token at once and no lock is
    held across the call. A confirmed revocation deletes the row.
    """
    now = ctx.now()
    with ctx.db.transaction() as tx:
        claimed = tx.rows(
            "SELECT id, client_id, refresh_token_sealed, revoke_attempts FROM apple_tokens"
            " WHERE revoke_after <= :now AND (CAST(:only AS bigint) IS NULL OR id = CAST(:only AS bigint))"
            " ORDER BY revoke_after LIMIT :n FOR UPDATE SKIP LOCKED",
            now=now,
            only=only,
            n=limit,
        )
        for row in claimed:
            backoff = min(timedelta(minutes=2 ** min(row["revoke_attempts"], 10)), MAX_BACKOFF)
            tx.execute(
                "UPDATE apple_tokens SET revoke_after = :next, revoke_attempts = revoke_attempts + 1 WHERE id = :id",
                next=now + backoff,
                id=row["id"],
            )
        tx.commit()
    revoked = failed = 0
    for row in claimed:
        try:
            token = apple.unseal(ctx, row["client_id"], row["refresh_token_sealed"])
        except ValueError:
            log.error("apple token cannot be opened with the current key; kept for a key fix", extra={"id": row["id"]})
            failed += 1
            continue
        if not apple.revoke(ctx, row["client_id"], token):
            failed += 1
            break
        with ctx.db.transaction() as tx:
            tx.execute("DELETE FROM apple_tokens WHERE id = :id", id=row["id"])
            tx.commit()
        revoked += 1
    if failed:
        log.warning("apple revocations failed; retried later", extra={"failed": failed})
    return {"apple_revoked": revoked, "apple_revoke_failed": failed}
