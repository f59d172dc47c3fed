"""Read the whole availability mirror, and what Postgres implies it should be."""

from __future__ import annotations

import uuid
from typing import Any

from shared import mitras
from shared.availability import truth
from shared.context import AppContext


def actual(ctx: AppContext) -> dict[str, Any]:
    """The mirror as Valkey holds it."""
    v, k = ctx.valkey, ctx.keys
    return {
        "online": set(v.smembers(k.online)),
        "deactivated": set(v.smembers(k.deactivated)),
        "used": {m: int(n) for m, n in v.hgetall(k.used).items()},
        "max": {m: int(n) for m, n in v.hgetall(k.max).items()},
        "heartbeat_members": set(v.zrange(k.heartbeat, 0, -1)),
        "available": set(v.zrange(k.available, 0, -1)),
        "ring": set(v.zrange(k.ring, 0, -1)),
        "default_max": int(v.hget(k.config, "default_max") or 1),
    }


def expected(ctx: AppContext) -> dict[str, Any]:
    """The mirror Postgres implies (heartbeat scores aside: pings reach Postgres only via the sweep).

    The available rule is spelled out here on purpose, as an oracle independent of the
    production copies (which test_available_rule_agrees checks against each other).
    """
    with ctx.db.transaction() as tx:
        rows = truth.mirrored_mitras(tx)
        default = truth.default_max(tx)
    available = {
        r.id for r in rows if r.online and r.active and r.used < (default if r.max_override is None else r.max_override)
    }
    return {
        "online": {r.id for r in rows if r.online},
        "deactivated": {r.id for r in rows if not r.active},
        "used": {r.id: r.used for r in rows if r.used > 0},
        "max": {r.id: r.max_override for r in rows if r.max_override is not None},
        "heartbeat_members": {r.id for r in rows if r.online},
        "available": available,
        "ring": available,
        "default_max": default,
    }


def scores_consistent(ctx: AppContext) -> bool:
    """Every available member is scored by its heartbeat."""
    v, k = ctx.valkey, ctx.keys
    avail = dict(v.zrange(k.available, 0, -1, withscores=True))
    hb = dict(v.zrange(k.heartbeat, 0, -1, withscores=True))
    return all(hb.get(m) == s for m, s in avail.items())


def new_mitra(ctx: AppContext, max_sessions: int | None = None) -> str:
    """A fresh mitra (offline, active) with a random phone."""
    with ctx.db.transaction() as tx:
        row = mitras.create(tx, f"+62812{uuid.uuid4().int % 10**8:08d}", "Mitra", max_sessions)
        tx.commit()
    return str(row["id"])


def open_session(ctx: AppContext, mitra_id: str, status: str = "active") -> str:
    """A chat session of a new customer held by `mitra_id` (counts toward its used capacity)."""
    with ctx.db.transaction() as tx:
        customer = tx.scalar("INSERT INTO customers (display_name) VALUES ('c') RETURNING id")
        sid = tx.scalar(
            "INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes)"
            " VALUES (:c, CAST(:m AS uuid), :s, 30) RETURNING id",
            c=customer,
            m=mitra_id,
            s=status,
        )
        tx.commit()
    return str(sid)


def close_session(ctx: AppContext, session_id: str) -> None:
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE chat_sessions SET status = 'ended' WHERE id = CAST(:id AS uuid)", id=session_id)
        tx.commit()
