"""Taking access away so that it survives any Valkey outage: the policy (docs/availability.md).

Postgres (`auth_sessions.revoked_at`) is the truth; the mirror's `revoked:<sid>` marks are
what the guard and the heartbeat script read on the hot path. A write that takes access
away must never be lost with the mirror still trusted, so `take_access_away` revokes in
Postgres and writes the marks *before* the caller commits. A process that dies after the
commit has already written them; a commit that fails after the write leaves a session
refused that Postgres still allows (fail-closed: the user signs in again). When the write
fails nothing is lost: Postgres holds the revocation, this instance stops trusting the
mirror, and the same transaction counts the miss, so every other instance repairs the
mirror before it trusts it again (`shared.availability.access`, the trust/repair protocol).

`take_access_away` is the one entry point for logout, refresh-token reuse, password changes,
mitra deactivation and customer blocks; `is_revoked` is the guard's check. This module
depends on the mirror (`shared.availability.mirror`, `.access`), never the other way.
Design notes and the remaining trade-offs: docs/availability.md ("Outages and access").
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.auth import tokens
from shared.availability import access, mirror
from shared.context import AppContext
from shared.db import Tx
from shared.valkey import VALKEY_ERRORS


def take_access_away(
    ctx: AppContext,
    tx: Tx,
    *,
    reason: str,
    session_ids: Iterable[str] = (),
    user_type: str | None = None,
    user_id: str | None = None,
    except_session: str | None = None,
) -> list[str]:
    """Revoke sessions (by id, or all of a user's) inside `tx` and mark them revoked in Valkey.

    Call it before `tx.commit()`. Returns the ids revoked now. A Valkey failure is absorbed:
    the miss is counted in `tx`, and no instance trusts the mirror until it is repaired.
    """
    ids = tokens.revoke_sessions_in_tx(
        tx,
        now=ctx.now(),
        reason=reason,
        session_ids=session_ids,
        user_type=user_type,
        user_id=user_id,
        except_session=except_session,
    )
    if ids and not mirror.write_marks(ctx, ids):
        access.mark_suspect(ctx)
        access.count_miss(tx)
    return ids


def is_revoked(ctx: AppContext, sid: str) -> bool:
    """Valkey first (one round trip); Postgres when Valkey fails, is not seeded or not trusted.

    A "not revoked" answer from Valkey counts only while this instance trusts the mirror:
    after a cold start, a new Valkey connection, a failed access write or a miss counted by
    another instance, the mirror is repaired from Postgres first.
    """
    try:
        trusted_at = access.trust(ctx)
        seeded, revoked = mirror.revocation_state(ctx, sid)
        if revoked:
            return True
        # Re-checked after the call: a reconnect inside it may have met a restarted server.
        if seeded and access.still_trusted(ctx, trusted_at):
            return False
    except VALKEY_ERRORS:
        access.mark_suspect(ctx)
    return tokens.session_revoked_in_postgres(ctx, sid)
