"""Measured inputs of docs/capacity.md.

1. Heartbeat scripts per second one Valkey core sustains: several client processes each keep
   a pipeline of the real heartbeat script (EVALSHA, the production keys) full, over a mirror
   of `--online` online mitras, for `--seconds`. Valkey's own CPU time (INFO cpu) gives the
   scripts per Valkey CPU-second, which does not depend on what else the machine runs.
2. What one heartbeat-mirror pass writes to Postgres at 10k / 100k online: rows, HOT share,
   WAL bytes (pg_current_wal_lsn before and after).

    .venv/bin/python -m bench.capacity [--online 100000] [--clients 4] [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Any

from bench.mirror import _populate
from bench.paths import _all_heartbeats, servers
from shared.availability import mirror, seed
from shared.context import AppContext
from shared.sweeps import jobs

PIPELINE = 64


def _driver(url: str, prefix: str, ids: list[str], seconds: float, out: Any) -> None:
    import redis

    from shared.keys import Keys

    client = redis.Redis.from_url(url, decode_responses=True)
    script = client.register_script(  # the production script as the mirror loads it, rule prepended
        (mirror._HERE / "_available_rule.lua").read_text() + "\n" + (mirror._HERE / "heartbeat.lua").read_text()
    )
    k = Keys(prefix)
    keys_of = [
        *[k.online, k.deactivated, k.used, k.max, k.heartbeat, k.available, k.ring, k.config],
        *[k.seed_lock, k.seed_dirty, k.seeded],
    ]
    sent, i = 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pipe = client.pipeline(transaction=False)
        now = int(time.time() * 1000)
        for _ in range(PIPELINE):
            mid = ids[i % len(ids)]
            i += 1
            script(keys=[*keys_of, k.revoked(mid)], args=[mid, now], client=pipe)
        pipe.execute()
        sent += PIPELINE
    out.put(sent)


def _cpu(ctx: AppContext) -> float:
    info = ctx.valkey.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def script_rate(ctx: AppContext, online: int, clients: int, seconds: float) -> dict[str, float]:
    """Heartbeat scripts/s (wall) and per Valkey CPU-second, `clients` processes."""
    _populate(ctx, online)
    ctx.valkey.flushdb()
    empty = int(ctx.valkey.info("memory")["used_memory"])
    seed.seed_from_postgres(ctx)
    mirror_bytes = int(ctx.valkey.info("memory")["used_memory"]) - empty
    ids = [str(i) for i in ctx.valkey.srandmember(ctx.keys.online, 20_000)]
    url = ctx.settings.valkey_url
    out: Any = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_driver, args=(url, ctx.settings.valkey_prefix, ids[j::clients], seconds, out))
        for j in range(clients)
    ]
    cpu0, t0 = _cpu(ctx), time.perf_counter()
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    cpu, wall = _cpu(ctx) - cpu0, time.perf_counter() - t0
    return {
        "scripts": total,
        "per_wall_second": total / wall,
        "per_cpu_second": total / cpu,
        "valkey_cpu_share": cpu / wall,
        "bytes_per_online": mirror_bytes / online,
    }


def mirror_pass_writes(ctx: AppContext, online: int) -> dict[str, float]:
    """Rows, HOT updates and WAL bytes of one heartbeat-mirror pass with every online mitra pinged."""
    _populate(ctx, online)
    ctx.valkey.flushdb()
    seed.seed_from_postgres(ctx)
    out: dict[str, float] = {}
    for attempt in range(2):  # the first pass inserts every pings row; the second is the steady state
        _all_heartbeats(ctx, ctx.now_ms() + attempt + 1)
        with ctx.db.transaction() as tx:
            lsn0 = tx.scalar("SELECT pg_current_wal_lsn()::text")
            tx.commit()
        stats0 = ctx.db.rows("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'mitra_pings'")[
            0
        ]
        started = time.perf_counter()
        result = jobs.heartbeat_mirror_pass(ctx)
        elapsed = time.perf_counter() - started
        time.sleep(0.6)  # the statistics collector flushes at most every 500 ms
        with ctx.db.transaction() as tx:
            wal = tx.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), CAST(:l AS pg_lsn))", l=lsn0)
            tx.commit()
        stats = ctx.db.rows("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'mitra_pings'")[0]
        upd = stats["n_tup_upd"] - stats0["n_tup_upd"]
        hot = stats["n_tup_hot_upd"] - stats0["n_tup_hot_upd"]
        out = {
            "rows": result["mirrored"],
            "updates": upd,
            "hot_share": hot / upd if upd else 0.0,
            "wal_bytes": float(wal),
            "seconds": elapsed,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--online", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    with servers() as ctx:
        ctx.valkey.config_set("slowlog-log-slower-than", 10_000)  # the default; servers() turns it off
        r = script_rate(ctx, args.online, args.clients, args.seconds)
        print(
            f"heartbeat script, {args.clients} clients, {args.online:,} online: {r['per_wall_second']:,.0f}/s wall,"
            f" {r['per_cpu_second']:,.0f} per Valkey CPU-second (Valkey used {r['valkey_cpu_share']:.0%} of a core);"
            f" mirror memory {r['bytes_per_online']:.0f} bytes per online mitra"
        )
        for n in (10_000, 100_000):
            w = mirror_pass_writes(ctx, n)
            print(
                f"heartbeat-mirror pass at {n:,} online: {w['rows']:,.0f} rows, {w['hot_share']:.0%} HOT,"
                f" {w['wal_bytes'] / 1e6:.1f} MB WAL, {w['seconds'] * 1000:.0f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
