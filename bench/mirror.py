"""Availability reads at 10,000 and 100,000 online mitras, three ways, in one run:

(a) the mirror (find: one script walking the ring; count: ZCOUNT on the available index),
(b) the Postgres fallback queries,
(c) the original system's per-mitra-key layout: SDIFF online - deactivated, then pipelined
    GETs of mitra:capacity:<id> and mitra:heartbeat:<id> (ISO strings) filtered in the app.

Prints the median of find_available_mitras(limit=25) and of count_available for each, and
the ratios to the mirror. Always runs on embedded servers of its own (it truncates tables).

    .venv/bin/python -m bench.mirror [--sizes 10000,100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from bench.common import median_ms, own_servers
from shared.availability import mirror, seed, truth
from shared.context import AppContext

BUSY_EVERY = 10  # one mitra in ten holds an active session (so capacity filtering matters)


POPULATE_CHUNK = 20_000  # mitras per statement: each stays well inside the driver's 10 s socket timeout


def _populate(ctx: AppContext, n: int, spread_seconds: int = 0) -> None:
    """n online mitras with fresh heartbeats (within the last `spread_seconds`); every
    BUSY_EVERY-th holds an active session. Inserted in chunks of POPULATE_CHUNK, one statement
    each (the mitras, then their customers and sessions from what it returned)."""
    with ctx.db.transaction() as tx:
        tx.execute("TRUNCATE mitras, customers, chat_sessions, pairing_offers CASCADE")
        for lo in range(1, n + 1, POPULATE_CHUNK):
            tx.execute(
                "WITH m AS (INSERT INTO mitras (phone_e164, display_name, is_online, last_heartbeat_at)"
                "   SELECT '+6281' || lpad(g::text, 9, '0'), 'm' || g, true,"
                "          now() - random() * make_interval(secs => CAST(:spread AS int))"
                "   FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g RETURNING id),"
                " busy AS (SELECT id, row_number() OVER (ORDER BY id) AS r FROM m),"
                " c AS (INSERT INTO customers (display_name) SELECT 'c' FROM busy WHERE r % :k = 0 RETURNING id),"
                " pairs AS (SELECT b.id AS mitra_id, c.id AS customer_id FROM"
                "   (SELECT id, row_number() OVER () AS r FROM busy WHERE r % :k = 0) b"
                "   JOIN (SELECT id, row_number() OVER () AS r FROM c) c USING (r))"
                " INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes)"
                " SELECT customer_id, mitra_id, 'active', 30 FROM pairs",
                lo=lo,
                hi=min(n, lo + POPULATE_CHUNK - 1),
                k=BUSY_EVERY,
                spread=spread_seconds,
            )
        tx.execute("ANALYZE mitras")
        tx.execute("ANALYZE chat_sessions")
        tx.commit()


def _original_layout(ctx: AppContext, prefix: str) -> None:
    """Write the original per-mitra keys: two SETs plus two STRINGs per online mitra."""
    with ctx.db.transaction() as tx:
        rows = truth.mirrored_mitras(tx)
    v = ctx.valkey
    v.delete(f"{prefix}mitras:online", f"{prefix}mitras:deactivated")
    pipe = v.pipeline(transaction=False)
    for i, r in enumerate(rows):
        pipe.sadd(f"{prefix}mitras:online", r.id)
        pipe.set(f"{prefix}mitra:capacity:{r.id}", r.used)
        pipe.set(f"{prefix}mitra:heartbeat:{r.id}", datetime.now(UTC).isoformat())
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def _original_scan(ctx: AppContext, prefix: str) -> list[str]:
    """The original read: SDIFF, then pipelined GETs, then filtering in the app."""
    v = ctx.valkey
    ids = list(v.sdiff(f"{prefix}mitras:online", f"{prefix}mitras:deactivated"))
    pipe = v.pipeline(transaction=False)
    for mid in ids:
        pipe.get(f"{prefix}mitra:capacity:{mid}")
        pipe.get(f"{prefix}mitra:heartbeat:{mid}")
    values = pipe.execute()
    cutoff = datetime.now(UTC) - timedelta(seconds=ctx.settings.mitra_heartbeat_stale_seconds)
    out = []
    for i, mid in enumerate(ids):
        used, hb = values[2 * i], values[2 * i + 1]
        if int(used or 0) < 1 and hb and datetime.fromisoformat(hb) > cutoff:
            out.append(mid)
    return out


def _run(ctx: AppContext, n: int, repeat: int) -> dict[str, float]:
    _populate(ctx, n)
    ctx.valkey.flushdb()  # our own embedded Valkey
    seed.seed_from_postgres(ctx)
    prefix = "bench:orig:"
    _original_layout(ctx, prefix)
    cutoff = truth.cutoff_for(ctx.now(), ctx.settings.mitra_heartbeat_stale_seconds)

    def pg_find() -> list[str]:
        with ctx.db.transaction() as tx:
            return truth.find_available(tx, cutoff, 25, [])

    def pg_count() -> int:
        with ctx.db.transaction() as tx:
            return truth.count_available(tx, cutoff)

    drop_snapshot = lambda: ctx.valkey.delete(ctx.keys.snapshot)  # noqa: E731 (measure the uncached count)
    expected = n - n // BUSY_EVERY
    assert mirror.count_available(ctx) is not None
    drop_snapshot()
    assert mirror.count_available(ctx)[0] == expected == pg_count() == len(_original_scan(ctx, prefix))  # type: ignore[index]
    return {
        "find_mirror": median_ms(lambda: mirror.find_available(ctx, 25, []), repeat),
        "find_postgres": median_ms(pg_find, repeat),
        "find_original": median_ms(lambda: _original_scan(ctx, prefix)[:25], repeat),
        "count_mirror": median_ms(lambda: mirror.count_available(ctx), repeat, before=drop_snapshot),
        "count_postgres": median_ms(pg_count, repeat),
        "count_original": median_ms(lambda: len(_original_scan(ctx, prefix)), repeat),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    with own_servers("bench-mirror-") as ctx:
        header = ("mitras", "read", "mirror ms", "postgres ms", "original ms", "pg/mirror", "orig/mirror")
        print("{:>8} {:<6} {:>10} {:>12} {:>12} {:>10} {:>12}".format(*header))
        for n in (int(s) for s in args.sizes.split(",")):
            r = _run(ctx, n, args.repeat)
            for read in ("find", "count"):
                m, p, o = r[f"{read}_mirror"], r[f"{read}_postgres"], r[f"{read}_original"]
                print(f"{n:>8} {read:<6} {m:>10.3f} {p:>12.3f} {o:>12.3f} {p / m:>9.1f}x {o / m:>11.1f}x")


if __name__ == "__main__":
    main()
