"""The sweeps (docs/sweeps.md), each one idempotent pass run by `shared.sweeps.runner`.

- auto-offline: stale heartbeats come from the mirror (a ZSET range, not a scan of every
  mitra). Any Valkey error, or a mirror that is not seeded, aborts the pass before Postgres
  is touched: a Valkey hiccup must never mass-offline from a Postgres scan. A breaker offlines
  nobody when too many online mitras look stale at once (the fault is upstream).
- heartbeat-mirror: pings newer than the watermark, read in short chunks, go to the narrow
  `mitra_pings` table (shared.mitras.record_pings), one statement per chunk in one transaction,
  without ever moving a timestamp backwards (a mitra's last ping is the later of
  mitra_pings.at and mitras.last_heartbeat_at). A worker thread reads the next chunk from
  Valkey while Postgres writes the current one.

The SQL of `mitras`, `mitra_status_logs` and `mitra_pings` lives in shared.mitras.
- availability-reseed: the atomic reseed, reporting the drift it healed.
- session-expiry: the pairing timeouts (shared.sessions.settle.expire_due_sessions), then the
  Apple token revocations still due (shared.auth.apple_tokens.revoke_due).
- retention: rows past their table's retention deleted in small batches (shared.retention).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared import availability, mitras, oplog, retention
from shared.config import Settings
from shared.context import AppContext
from shared.db import Tx
from shared.prefetch import prefetched
from shared.sweeps import runner
from shared.sweeps.runner import PassResult, Sweep
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)

ACTOR = "sweep:auto-offline"
MAX_STALE_PER_PASS = 10_000


def breaker_trips(stale: int, online: int, max_fraction: float, minimum: int) -> bool:
    """Whether so many online mitras look stale at once that the fault is upstream: offline nobody.

    Trips when at least `minimum` are stale and they are more than `max_fraction` of the online
    ones; fewer than `minimum` stale mitras are always offlined, whatever fraction they are.
    """
    return stale >= minimum and stale > max_fraction * online


def auto_offline_pass(ctx: AppContext, lock_tx: Tx | None = None) -> PassResult:
    """Offline mitras whose mirrored heartbeat is stale; abort on any Valkey trouble."""
    settings = ctx.settings
    try:
        scan = availability.stale_scan(ctx, availability.cutoff_ms(ctx), MAX_STALE_PER_PASS)
        if scan is None:
            availability.ensure_seeded(ctx)  # the next pass can trust it again
            oplog.emit("sweep.aborted", sweep="auto-offline", reason="mirror_not_seeded")
            return {"offlined": 0, "aborted": 1, "abort_reason": "mirror_not_seeded"}
    except VALKEY_ERRORS:
        oplog.emit("sweep.aborted", sweep="auto-offline", reason="valkey_error")
        return {"offlined": 0, "aborted": 1, "abort_reason": "valkey_error"}
    if not scan.count:
        return {"offlined": 0, "stale": 0}
    if breaker_trips(scan.count, scan.online, settings.auto_offline_max_fraction, settings.auto_offline_breaker_min):
        oplog.emit("sweep.breaker_tripped", stale=scan.count, online=scan.online)
        return {"offlined": 0, "stale": scan.count, "breaker_open": True}
    with runner.write_transaction(ctx, lock_tx) as tx:  # the lock's own transaction: one connection per pass
        offlined = mitras.offline_stale(tx, scan.ids_csv, scan.ms_csv, ACTOR, ctx.now())
        tx.commit()
    # Postgres has committed; now the mirror. Every stale id leaves it (also ones Postgres already
    # had offline: the mirror was wrong about them). An error here is healed by the reseed.
    try:
        availability.remove_offlined(ctx, scan.ids_csv)
    except VALKEY_ERRORS as exc:
        log.warning("auto-offline: mirror removal failed; reseed heals it", extra={"error": type(exc).__name__})
    if offlined:
        log.info("auto-offline pass", extra={"offlined": offlined, "stale": scan.count})
    return {"offlined": offlined, "stale": scan.count}


def heartbeat_mirror_pass(ctx: AppContext, lock_tx: Tx | None = None) -> PassResult:
    """Copy pings newer than the watermark to Postgres, chunk by chunk in one transaction; idempotent.

    A Valkey error while reading rolls back what this pass wrote (the watermark has not moved,
    so the next pass reads it all again).
    """
    read = changed = 0
    try:
        since = highest = availability.heartbeat_watermark(ctx)
        with runner.write_transaction(ctx, lock_tx) as tx:
            for pings in prefetched(availability.ping_chunks(ctx, since)):
                changed += mitras.record_pings(tx, pings.ids_csv, pings.ms_csv, pings.count)
                read += pings.count
                highest = max(highest, pings.highest_ms)
            tx.commit()
    except VALKEY_ERRORS:
        oplog.emit("sweep.aborted", sweep="heartbeat-mirror", reason="valkey_error")
        return {"mirrored": 0, "aborted": 1, "abort_reason": "valkey_error"}
    if not read:
        return {"mirrored": 0}
    with contextlib.suppress(*VALKEY_ERRORS):
        # On failure the next pass re-reads these pings; the UPDATE skips what Postgres has.
        availability.set_heartbeat_watermark(ctx, highest)
    return {"mirrored": changed, "read": read}


def reseed_pass(ctx: AppContext, lock_tx: Tx | None = None) -> PassResult:
    """Rebuild the mirror from Postgres; report the drift healed (logged when non-zero).

    A Valkey error aborts the pass (the next run, or the first reader that finds `seeded`
    missing, seeds again): a fault of the store is reported, never a failed request.
    """
    del lock_tx  # the seed writes Valkey only; its Postgres reads need no lock of their own
    try:
        report = availability.seed_from_postgres(ctx)
    except VALKEY_ERRORS:
        oplog.emit("sweep.aborted", sweep="availability-reseed", reason="valkey_error")
        return {"reseeded": 0, "aborted": 1, "abort_reason": "valkey_error"}
    if report.drift_total:
        oplog.emit("mirror.drift_healed", drift=report.drift_total, mitras=report.mitras)
    return {
        "reseeded": int(report.ran),
        "drift": report.drift_total,
        "drift_detail": report.drift,
        "mitras": report.mitras,
    }


def session_expiry_pass(ctx: AppContext, lock_tx: Tx | None = None) -> PassResult:
    """Reconcile pending payments, expire searching / unpaid sessions and end overdue active ones;
    then retry the Apple token revocations that account deletions left due
    (shared.auth.apple_tokens)."""
    from shared.auth import apple_tokens
    from shared.payments.service import reconcile_pending
    from shared.sessions.settle import expire_due_sessions

    del lock_tx  # it commits batch by batch, each with its effects, in transactions of its own
    # Money rule (docs/payments.md): payments settled at the gateway whose notification was lost
    # are applied before their sessions would expire unpaid.
    reconciled = reconcile_pending(ctx)
    counts: dict[str, Any] = expire_due_sessions(ctx)
    counts["expired"] = sum(v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool))
    counts["payments_reconciled"] = reconciled
    counts.update(apple_tokens.revoke_due(ctx))
    return counts


def retention_pass(ctx: AppContext, lock_tx: Tx | None = None) -> PassResult:
    """Delete rows past their table's retention, in small batches (shared.retention)."""
    del lock_tx  # each batch is a short transaction of its own: no lock held across batches
    deleted = retention.delete_expired(ctx)
    return {"deleted": sum(deleted.values()), "deleted_by_table": deleted}


SWEEPS: dict[str, tuple[Callable[[Settings], int], Callable[[AppContext, Tx], PassResult]]] = {
    "auto-offline": (lambda s: s.mitra_auto_offline_sweep_seconds, auto_offline_pass),
    "heartbeat-mirror": (lambda s: s.heartbeat_mirror_interval_seconds, heartbeat_mirror_pass),
    "availability-reseed": (lambda s: s.availability_reseed_sweep_seconds, reseed_pass),
    "session-expiry": (lambda s: s.session_expiry_sweep_seconds, session_expiry_pass),
    "retention": (lambda s: s.retention_sweep_seconds, retention_pass),
}


def sweep(name: str, settings: Settings) -> Sweep:
    """The named sweep with its configured cadence."""
    cadence, run_pass = SWEEPS[name]
    return Sweep(name, cadence(settings), run_pass)


def schedule_time(header: str | None) -> str | None:
    """X-CloudScheduler-ScheduleTime as given (an RFC 3339 time), if it parses."""
    if not header:
        return None
    try:
        datetime.fromisoformat(header.replace("Z", "+00:00"))
    except ValueError:
        return None
    return header[:64]
