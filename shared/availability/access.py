"""Whether this instance may trust the mirror's access answers, and the repair that earns it.

Postgres (`auth_sessions.revoked_at`, `mitras.is_active`) is the truth; the mirror's
`revoked:<sid>` marks and `mitras:deactivated` set are what the guard and the heartbeat
script read on the hot path (`shared.auth.revocation` is the policy that writes and reads
them). A write the mirror missed must never stay hidden behind a trusted mirror, so:

1. Trust is per instance and must be re-earned after anything that may have hidden a write:
   a cold start, any new Valkey connection (server restarted with or without its data,
   failover, a connection dropped after a timeout or a pause) or a failed write of its own
   (`mark_suspect`). Re-earning it (`repair`) replays into Valkey every access removal of
   the last access-token lifetime from Postgres (older access tokens have expired anyway)
   and the pings answered from Postgres, then trusts the mirror until the next such event.
   In between the guard and the heartbeat answer from Postgres.
2. A write the mirror missed is counted in Postgres (`count_miss`, `access_mirror_misses`)
   in the transaction that makes it, so it commits exactly when the write does. Every
   instance checks, at most once per `CHECK_SECONDS` and before it trusts the mirror with an
   access answer, that the mirror has repaired as many misses (`{avail}:access:repaired`)
   as Postgres counts; when it is behind it repairs. So an instance that made no call during
   a pause (its connection survived) or that never lost Valkey at all (the writer was the
   one cut off) refuses every revocation committed more than `CHECK_SECONDS` before it
   answers.

Design notes and the remaining trade-offs: docs/availability.md ("Outages and access").
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from shared import mitras as mitras_table
from shared import oplog
from shared.availability import mirror, truth
from shared.context import AppContext
from shared.db import DatabaseUnavailable, Tx
from shared.valkey import VALKEY_ERRORS, mirror_node

log = logging.getLogger(__name__)


@dataclass
class _Trust:
    """Per-instance state: the mirror node and its connection count at the last successful repair."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    verified_at: tuple[str, int] | None = None
    repairing: bool = False  # one repair at a time per instance; the others use Postgres meanwhile
    check_lock: threading.Lock = field(default_factory=threading.Lock)
    checked_at: float = -math.inf  # time.monotonic() before the last read of the Postgres miss count
    pings_missed: bool = False  # a ping answered from Postgres was counted as a miss since the last repair


# The bound: a revocation whose mark write failed is refused by every instance at most this
# long after it committed (the miss count is read at most once per this per instance).
CHECK_SECONDS = 1.0
# How long a request waits for another one's check before it gives Postgres up as too slow.
CHECK_WAIT_SECONDS = 1.0


Mark = tuple[str, int]  # (mirror node "host:port", connections opened to it)


def _mark(ctx: AppContext) -> Mark:
    """Where the mirror is served now and how many connections this instance opened to it."""
    node = mirror_node(ctx.valkey, ctx.keys.seeded)
    return node, ctx.valkey_connects(node)


def _trust(ctx: AppContext) -> _Trust:
    state: _Trust = ctx.singleton("availability.access.trust", _Trust)
    return state


def count_miss(tx: Tx) -> None:
    """Count, in `tx`, a write the mirror missed: every instance repairs it within CHECK_SECONDS."""
    tx.execute("UPDATE access_mirror_misses SET missed = missed + 1")


def should_count_missed_ping(ctx: AppContext) -> bool:
    """True for the first ping this instance answers from Postgres without reaching the mirror
    since its last repair: that one counts a miss (in its own transaction), so the other
    instances' repairs replay it; the later ones ride on the same miss. Call
    `missed_ping_counted` after that transaction commits."""
    return not _trust(ctx).pings_missed


def missed_ping_counted(ctx: AppContext) -> None:
    state = _trust(ctx)
    with state.lock:
        state.pings_missed = True


def _missed(tx: Tx) -> int:
    """How many revocations committed without their mark (only ever grows)."""
    return int(tx.scalar("SELECT missed FROM access_mirror_misses") or 0)


def mark_suspect(ctx: AppContext) -> None:
    """Stop trusting the mirror's access answers in this instance until the next `repair`."""
    state = _trust(ctx)
    with state.lock:
        state.verified_at = None


# ---- the read side ----------------------------------------------------------------------------


def mirror_trusted(ctx: AppContext) -> bool:
    """True while no Valkey connection was opened and no access write failed since the last repair."""
    state = _trust(ctx)
    with state.lock:
        verified = state.verified_at
    return verified is not None and verified == _mark(ctx)


def trust(ctx: AppContext) -> Mark | None:
    """Repair first if needed; the mark under which the mirror may answer, or None.

    None means: answer from Postgres (Valkey failed during the repair). When Postgres itself
    is unreachable the repair cannot run and Valkey is the only store left that can answer:
    the mirror is used unverified (no access can be taken away meanwhile either, and the
    next call tries the repair again). Pass the result to `still_trusted` after the Valkey call.
    """
    state = _trust(ctx)
    with state.lock:
        verified = state.verified_at
    current = _mark(ctx)
    if verified is not None and verified == current and _no_missed_marks(ctx, state):
        return current
    with state.lock:
        if state.repairing:
            return None
        state.repairing = True
    try:
        return _repair(ctx)
    finally:
        with state.lock:
            state.repairing = False


def _no_missed_marks(ctx: AppContext, state: _Trust) -> bool:
    """False when Postgres counts more missed marks than the mirror has repaired.

    Read at most once per CHECK_SECONDS per instance (one SQL statement and one GET); callers
    arriving while it runs wait for it, up to CHECK_WAIT_SECONDS. A Postgres that is down, or
    too slow to answer within that wait, cannot be asked: the answer is then True, because
    the mirror is the only store left (see `trust`), and the check runs again a second later.
    Raises on Valkey errors.
    """
    if time.monotonic() - state.checked_at < CHECK_SECONDS:  # the steady state: no lock taken
        return True
    if not state.check_lock.acquire(timeout=CHECK_WAIT_SECONDS):
        log.warning("the access check is waiting on Postgres; the mirror answers unverified")
        return True
    try:
        started = time.monotonic()
        if started - state.checked_at < CHECK_SECONDS:
            return True
        try:
            with ctx.db.transaction() as tx:
                missed = _missed(tx)
        except DatabaseUnavailable:
            state.checked_at = started
            return True
        repaired = int(ctx.valkey.get(ctx.keys.access_repaired) or 0)
        if missed > repaired:
            log.warning("the mirror lacks revocation marks another instance missed; repairing it")
            mark_suspect(ctx)
            return False
        state.checked_at = started
        return True
    finally:
        state.check_lock.release()


def still_trusted(ctx: AppContext, trusted_at: Mark | None) -> bool:
    """True when no connection to the mirror's node was opened since `trust` answered `trusted_at`."""
    return trusted_at is not None and _mark(ctx) == trusted_at


def repair(ctx: AppContext) -> bool:
    """Replay recent access removals from Postgres into Valkey; True when the mirror is trusted again."""
    trusted_at = _repair(ctx)
    return trusted_at is not None and mirror_trusted(ctx)


def _repair(ctx: AppContext) -> Mark | None:
    """Replay every access removal of the last access-token lifetime from Postgres into Valkey.

    Revoked sessions get their `revoked:<sid>` key back (with the rest of their lifetime);
    mitras deactivated in that time are re-synced into the mirror; pings answered from
    Postgres after the heartbeat-mirror watermark are raised in it; then the mirror records
    the miss count read first. On success the instance trusts the mirror again; on a Valkey
    error it stays suspect and returns None.
    """
    try:
        # Connect first (to the node holding the mirror's slot, on a cluster): a connection
        # opened by this repair itself must not undo it.
        ctx.valkey.exists(ctx.keys.seeded)
        connects = _mark(ctx)
        started = time.monotonic()
        now = ctx.now()
        ttl = ctx.settings.access_token_ttl_seconds
        since = now - timedelta(seconds=ttl)
        pipe = ctx.valkey.pipeline(transaction=False)
        pipe.get(ctx.keys.heartbeat_watermark)  # later pings may exist in Postgres only
        pipe.get(ctx.keys.access_repaired)
        watermark, repaired = (int(v or 0) for v in pipe.execute())
        with ctx.db.transaction() as tx:
            # First: each miss counted so far committed with its write, so the reads below
            # (later statements, later snapshots) see every one of them.
            missed = _missed(tx)
            revoked = truth.recent_revocations(tx, since)
            mitra_ids = mitras_table.deactivated_since(tx, since)
            mitras = truth.mitras_by_id(tx, mitra_ids) if mitra_ids else []
            # A ping the mirror lacks was counted as a miss: without one (a cold start, a new
            # connection) the scan of mitras is skipped.
            pings = truth.pings_after(tx, watermark) if missed > repaired else []
        if mitras:  # re-sync only those the deactivated set lacks (a healthy mirror has them all)
            present = ctx.valkey.smismember(ctx.keys.deactivated, [m.id for m in mitras])
            mitras = [m for m, there in zip(mitras, present, strict=True) if not there]
        pipe = ctx.valkey.pipeline(transaction=False)
        mirror.queue_marks(ctx, pipe, revoked, now)
        pipe.execute()
        if not all(mirror.sync(ctx, row) for row in mitras):
            return None
        mirror.replay_pings(ctx, pings)
        # Last, once the marks are in: a lower count written by a slower repair only costs one
        # more repair; a higher one is never written before its marks.
        ctx.valkey.set(ctx.keys.access_repaired, missed)
    except DatabaseUnavailable:
        # Postgres is down: the mirror answers unverified (docs/availability.md).
        oplog.emit("mirror.repair_failed", reason="postgres_down", error="DatabaseUnavailable")
        mark_suspect(ctx)
        return _mark(ctx)
    except VALKEY_ERRORS as exc:
        # The access checks answer from Postgres until a repair succeeds.
        oplog.emit("mirror.repair_failed", reason="valkey_error", error=type(exc).__name__)
        mark_suspect(ctx)
        return None
    state = _trust(ctx)
    with state.lock:
        state.verified_at = connects
        state.pings_missed = False
    with state.check_lock:
        state.checked_at = max(state.checked_at, started)
    oplog.emit("mirror.repaired", sessions=len(revoked), mitras=len(mitras), pings=len(pings))
    return connects
