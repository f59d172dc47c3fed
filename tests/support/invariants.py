"""The system's invariants, checked against the real stores; reusable by tests and the load test.

`violations(ctx)` returns a list of human-readable breaches (empty when everything holds):

- the mirror equals what Postgres implies (every index, `available` scored by its ping);
- a mitra's used capacity in the mirror equals its active + pending_payment sessions;
- no mitra holds more open sessions than its max (override, else the default);
- no chat session is in two states at once: every session has exactly one known status, at
  most one open session per customer, and the timestamps of its status are consistent.
"""

from __future__ import annotations

from typing import Any

from shared.context import AppContext
from tests.support import mirror_state

_OPEN = ("active", "pending_payment")
_STATUSES = ("searching", "pending_payment", "active", "ended", "expired", "cancelled")


def _mirror(ctx: AppContext) -> list[str]:
    actual, expected = mirror_state.actual(ctx), mirror_state.expected(ctx)
    out = [
        f"mirror {key}: {actual[key]!r} != Postgres {expected[key]!r}"
        for key in expected
        if actual[key] != expected[key]
    ]
    if not mirror_state.scores_consistent(ctx):
        out.append("mirror: an available member is not scored by its heartbeat")
    return out


def _capacity(ctx: AppContext) -> list[str]:
    rows: list[dict[str, Any]] = ctx.db.rows(
        "SELECT m.id::text AS id, count(s.id) AS used,"
        " COALESCE(m.max_concurrent_sessions, (SELECT (value #>> '{}')::int FROM app_config"
        "   WHERE key = 'mitra_max_concurrent_sessions'), 1) AS max"
        " FROM mitras m JOIN chat_sessions s ON s.mitra_id = m.id AND s.status IN ('active', 'pending_payment')"
        " GROUP BY m.id"
    )
    used_in_mirror = {m: int(n) for m, n in ctx.valkey.hgetall(ctx.keys.used).items()}
    out = []
    for r in rows:
        if used_in_mirror.get(r["id"], 0) != int(r["used"]):
            out.append(f"mitra {r['id']}: mirror used {used_in_mirror.get(r['id'], 0)} != open sessions {r['used']}")
        if int(r["used"]) > int(r["max"]):
            out.append(f"mitra {r['id']}: {r['used']} open sessions above its max {r['max']}")
    stray = set(used_in_mirror) - {r["id"] for r in rows}
    out += [f"mitra {m}: mirror used {used_in_mirror[m]} without an open session" for m in sorted(stray)]
    return out


def _sessions(ctx: AppContext) -> list[str]:
    out = []
    unknown = ctx.db.rows(
        "SELECT id::text AS id, status FROM chat_sessions WHERE NOT (status = ANY(CAST(:s AS text[])))",
        s=list(_STATUSES),
    )
    out += [f"session {r['id']}: unknown status {r['status']!r}" for r in unknown]
    doubled = ctx.db.rows(
        "SELECT customer_id::text AS c, count(*) AS n FROM chat_sessions"
        " WHERE status IN ('searching', 'pending_payment', 'active') GROUP BY customer_id HAVING count(*) > 1"
    )
    out += [f"customer {r['c']}: {r['n']} open sessions at once" for r in doubled]
    inconsistent = ctx.db.rows(
        "SELECT id::text AS id, status FROM chat_sessions WHERE"
        " (status = 'ended' AND ended_at IS NULL) OR (status IN ('pending_payment', 'active') AND mitra_id IS NULL)"
    )
    out += [f"session {r['id']}: {r['status']} with the fields of another state" for r in inconsistent]
    return out


def violations(ctx: AppContext) -> list[str]:
    """Every breached invariant (empty when all hold). Run when the system is quiescent."""
    return [*_mirror(ctx), *_capacity(ctx), *_sessions(ctx)]
