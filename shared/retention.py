"""Data that only grows: the retention sweep deletes what no rule needs any more, in small batches.

The rules (docs/retention.md says why each period is what it is):

| table | kept for | counted from |
|---|---|---|
| `sweep_runs` | 7 days | `started_at` (duplicate deliveries come within minutes) |
| `rate_limit_hits` | 2 days | `at` (the longest window is a day) |
| `otp_requests` | 7 days | `created_at` (codes live minutes; limits look back an hour) |
| `auth_sessions` (+ `refresh_tokens`) | 30 days | `revoked_at`, else `expires_at` (no token of it can be used then) |
| `pairing_offers` | 30 days | `offered_at` (every session is over long before) |
| `mitra_status_logs` | 180 days | `at` |
| `chat_session_events` | 365 days | `at` |
| `user_events` | 7 days | `created_at`, as an oldest prefix by id (the feed's rule, docs/events.md) |

Kept: customers, mitras, chat sessions and messages (until the account-deletion rules apply),
the control-center audit log, staff accounts, devices (capped per user), app_config.

Each batch is one short transaction that deletes at most BATCH rows (sessions: SESSION_BATCH,
each with its refresh tokens) with a lock_timeout, so no batch holds a lock long or blocks a
request; a pass stops after MAX_SECONDS and the next run goes on. Append-only tables with a
bigserial key are cut from the oldest id: a batch reads the BATCH oldest rows by primary key and
deletes those past the cutoff, so the work per batch is bounded even when nothing is left to
delete. The others are cut through an index on their time column (migrations 0011-0013).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import feed
from shared.context import AppContext

BATCH = 1_000
SESSION_BATCH = 200
MAX_SECONDS = 20.0
LOCK_TIMEOUT_MS = 2_000

_OLDEST_BY_ID = """
DELETE FROM {table} WHERE id IN (
    SELECT id FROM (SELECT id, {column} FROM {table} ORDER BY id LIMIT :n) oldest WHERE {column} < :cutoff
)"""


@dataclass(frozen=True)
class Rule:
    """One table's retention: how long, and the statement deleting one batch past the cutoff."""

    table: str
    keep: timedelta
    delete_batch: str
    batch: int = BATCH


RULES: tuple[Rule, ...] = (
    Rule(
        "sweep_runs",
        timedelta(days=7),
        "DELETE FROM sweep_runs WHERE (sweep, schedule_time) IN ("
        " SELECT sweep, schedule_time FROM sweep_runs WHERE started_at < :cutoff ORDER BY started_at LIMIT :n)",
    ),
    Rule("rate_limit_hits", timedelta(days=2), _OLDEST_BY_ID.format(table="rate_limit_hits", column="at")),
    Rule(
        "otp_requests",
        timedelta(days=7),
        "DELETE FROM otp_requests WHERE id IN ("
        " SELECT id FROM otp_requests WHERE created_at < :cutoff ORDER BY created_at LIMIT :n)",
    ),
    Rule(
        "auth_sessions",
        timedelta(days=30),
        # Revoked ones through the partial revoked_at index, then expired ones through expires_at.
        "DELETE FROM auth_sessions WHERE id IN ("
        " (SELECT id FROM auth_sessions WHERE revoked_at < :cutoff ORDER BY revoked_at LIMIT :n)"
        " UNION ALL"
        " (SELECT id FROM auth_sessions WHERE expires_at < :cutoff ORDER BY expires_at LIMIT :n))",
        SESSION_BATCH,
    ),
    Rule(
        "pairing_offers",
        timedelta(days=30),
        "DELETE FROM pairing_offers WHERE (session_id, mitra_id) IN ("
        " SELECT session_id, mitra_id FROM pairing_offers WHERE offered_at < :cutoff ORDER BY offered_at LIMIT :n)",
    ),
    Rule("mitra_status_logs", timedelta(days=180), _OLDEST_BY_ID.format(table="mitra_status_logs", column="at")),
    Rule("chat_session_events", timedelta(days=365), _OLDEST_BY_ID.format(table="chat_session_events", column="at")),
    Rule("user_events", feed.RETENTION, feed.DELETE_BATCH),
)


def delete_expired(
    ctx: AppContext,
    rules: tuple[Rule, ...] = RULES,
    max_seconds: float = MAX_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, int]:
    """Delete, batch by batch, every row past its table's retention; return rows deleted per table."""
    started = monotonic()
    now: datetime = ctx.now()
    deleted: dict[str, int] = {}
    for rule in rules:
        deleted[rule.table] = 0
        while monotonic() - started < max_seconds:
            with ctx.db.transaction() as tx:
                tx.script(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")  # an int constant, not input
                count = tx.execute(rule.delete_batch, cutoff=now - rule.keep, n=rule.batch)
                tx.commit()
            deleted[rule.table] += count
            if count < rule.batch:
                break
    return deleted
