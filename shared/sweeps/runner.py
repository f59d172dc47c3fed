"""Run a sweep the way Cloud Scheduler needs it: deduplicated, locked, bounded in time.

- Cloud Scheduler fires at most once a minute, so a sweep whose cadence is under 60 s runs
  `60 // cadence` passes inside one invocation, spaced by the cadence.
- Delivery is at-least-once: a retry repeats X-CloudScheduler-ScheduleTime. The first
  invocation claims `(sweep, schedule_time)` in `sweep_runs`; a duplicate delivery of a run
  that finished, or that is still running, does nothing. A run that failed (or was cut off)
  can be taken over by the retry.
- Instances overlap: each pass runs under a Postgres advisory lock for that sweep, so two
  invocations never run a pass at the same time, and every pass is idempotent. The lock is
  transaction-scoped and the runner hands that transaction to the pass, which writes
  through it (`write_transaction`), so a pass holds one connection, not two; committing its write ends
  the lock, and what follows the commit (the mirror step) is idempotent on its own.
- The whole invocation stays inside the function timeout: no pass starts when the remaining
  budget is shorter than the longest pass seen so far.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import oplog
from shared.context import AppContext
from shared.db import Tx

log = logging.getLogger(__name__)

PassResult = dict[str, Any]


@contextlib.contextmanager
def write_transaction(ctx: AppContext, lock_tx: Tx | None) -> Iterator[Tx]:
    """The pass's write transaction: `lock_tx`, the one holding its lock (committing it ends the
    lock), while still open; else a new one (a pass called outside `run_locked_pass`)."""
    if lock_tx is not None and not lock_tx.committed:
        yield lock_tx
        return
    with ctx.db.transaction() as tx:
        yield tx


@dataclass(frozen=True)
class Sweep:
    """A named sweep: its cadence and one idempotent pass, given the transaction holding its lock."""

    name: str
    cadence_seconds: int
    run_pass: Callable[[AppContext, Tx], PassResult]

    @property
    def passes_per_invocation(self) -> int:
        return max(1, 60 // self.cadence_seconds) if self.cadence_seconds < 60 else 1


def pass_fits(index: int, cadence_seconds: int, longest_pass: float, budget_seconds: float) -> bool:
    """Whether pass `index`, due `index * cadence` after the start, ends inside the budget if it
    lasts as long as the longest pass so far."""
    return index * cadence_seconds + longest_pass <= budget_seconds


def _claim(ctx: AppContext, sweep: str, schedule_time: str, budget_seconds: float) -> bool:
    """Own this scheduled run unless it finished or is still running elsewhere."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        owned = tx.scalar(
            "INSERT INTO sweep_runs (sweep, schedule_time, started_at) VALUES (:s, :t, :now)"
            " ON CONFLICT (sweep, schedule_time) DO UPDATE"
            "   SET started_at = EXCLUDED.started_at, attempts = sweep_runs.attempts + 1"
            "   WHERE sweep_runs.finished_at IS NULL AND sweep_runs.started_at < :stale"
            " RETURNING 1",
            s=sweep,
            t=schedule_time,
            now=now,
            stale=now - timedelta(seconds=budget_seconds),
        )
        tx.commit()
    return bool(owned == 1)


def _finish(ctx: AppContext, sweep: str, schedule_time: str, result: PassResult | None) -> None:
    """Mark the run finished, or (result None: it failed) let a retry take it over at once."""
    with ctx.db.transaction() as tx:
        if result is None:
            tx.execute(
                "UPDATE sweep_runs SET started_at = '-infinity' WHERE sweep = :s AND schedule_time = :t",
                s=sweep,
                t=schedule_time,
            )
        else:
            tx.execute(
                "UPDATE sweep_runs SET finished_at = :now, result = CAST(:r AS jsonb)"
                " WHERE sweep = :s AND schedule_time = :t",
                now=ctx.now(),
                r=json.dumps(result, default=str),
                s=sweep,
                t=schedule_time,
            )
        tx.commit()


def run_locked_pass(ctx: AppContext, sweep: Sweep) -> PassResult | None:
    """Run one pass under the sweep's advisory lock; None when another instance holds it."""
    with ctx.db.transaction() as lock_tx:
        # Transaction-scoped: released by the rollback at the end of this block, even on error.
        if not lock_tx.scalar("SELECT pg_try_advisory_xact_lock(hashtext(:k))", k=f"sweep:{sweep.name}"):
            return None
        return sweep.run_pass(ctx, lock_tx)


def _merge(totals: PassResult, result: PassResult) -> None:
    for key, value in result.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            totals[key] = value  # last pass wins for flags and lists (e.g. breaker_open)
        else:
            totals[key] = totals.get(key, 0) + value


def invoke(
    ctx: AppContext,
    sweep: Sweep,
    *,
    schedule_time: str | None,
    budget_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> PassResult:
    """One Scheduler invocation: claim, then up to `passes_per_invocation` locked passes."""
    if schedule_time and not _claim(ctx, sweep.name, schedule_time, budget_seconds):
        log.info("sweep delivery already handled", extra={"sweep": sweep.name, "schedule_time": schedule_time})
        return {"ran": False, "passes": 0, "reason": "duplicate_delivery"}
    started = monotonic()
    totals: PassResult = {}
    passes = skipped = 0
    longest = 0.0
    try:
        for index in range(sweep.passes_per_invocation):
            if not pass_fits(index, sweep.cadence_seconds, longest, budget_seconds):
                break
            due = started + index * sweep.cadence_seconds
            wait = due - monotonic()
            if wait > 0:
                sleep(wait)
            pass_started = monotonic()
            result = run_locked_pass(ctx, sweep)
            longest = max(longest, monotonic() - pass_started)
            if result is None:
                skipped += 1
                continue
            passes += 1
            _merge(totals, result)
    except Exception as exc:
        oplog.emit("sweep.failed", sweep=sweep.name, error=type(exc).__name__)
        if schedule_time:
            _finish(ctx, sweep.name, schedule_time, None)
        raise
    summary = {"ran": passes > 0, "passes": passes, "skipped_locked": skipped, **totals}
    if schedule_time:
        _finish(ctx, sweep.name, schedule_time, summary)
    log.info("sweep summary", extra={"sweep": sweep.name, **summary})
    oplog.emit("sweep.finished", sweep=sweep.name, passes=passes, seconds=round(monotonic() - started, 3))
    return summary
