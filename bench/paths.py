"""The availability paths at 1k / 10k / 100k / 1M online mitras, in one run on embedded servers:

- heartbeat-mirror: one pass after every online mitra pinged (all pings changed): the first,
  which creates every `mitra_pings` row, then the steady state (every row moved, in place);
- auto-offline: one locked pass with 1 % of online mitras stale;
- find_available(25): 100 % available but only 10 fresh (the heartbeat-blackout mix), and
  the normal mix (everyone fresh);
- default max: a change of the default max in the mirror (every online mitra re-derived, in
  pages), and the longest single command Valkey ran during it;
- reseed: the whole seed_from_postgres, on connections with the deployed statement and read
  timeouts, and the longest single command Valkey ran during it (SLOWLOG with a 1 ms
  threshold: a script or command blocks every other client while it runs);
- at every size: the bulk setup's time (insert the mitras, build the mirror), the mirror's
  Valkey memory per online mitra (INFO `used_memory` after the seed minus before), and the
  WAL Postgres writes per sweep pass (`pg_current_wal_insert_lsn` around the pass).

Each figure is the median of `--repeat` runs. Always runs on embedded servers of its own (it
truncates tables).

    .venv/bin/python -m bench.paths [--sizes 1000,10000,100000,1000000] [--repeat 5]

The default sizes come from BENCH_SIZES (default 1000,10000,100000,1000000).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import own_servers
from bench.mirror import _populate
from shared.availability import mirror, seed
from shared.config import Settings
from shared.context import AppContext
from shared.db import Database
from shared.sweeps import jobs, runner

FRESH_IN_BLACKOUT = 10
SIZES = os.environ.get("BENCH_SIZES", "1000,10000,100000,1000000")
PROGRESS = False  # `python -m bench.paths` prints each figure as it is measured
# After a reseed Valkey frees the retired keys in the background (UNLINK); on a 2-core machine
# that thread competes with the next measurement, so each one waits for it.
SETTLE_SECONDS = 1.0
DEPLOYED = Settings.from_env()  # the deployed timeouts (bench.common gives the bulk setup longer ones)


BLOCK_GOAL_MS = 50
# Shorter commands are not logged (a block with none reads "< 1 ms"): at threshold 0 a block at a
# million online logged tens of thousands of entries, a log Valkey then has to keep and free.
SLOWLOG_FLOOR_US = 1000
SLOWLOG_MAX_LEN = 200_000


def _slowlog_max_ms(ctx: AppContext, after_id: int) -> tuple[float, float]:
    """Longest command logged after entry `after_id`, in ms (0 when none reached SLOWLOG_FLOOR_US),
    and how many took longer than BLOCK_GOAL_MS; with PROGRESS, which script or command the
    longest was."""
    entries = [e for e in ctx.valkey.slowlog_get(SLOWLOG_MAX_LEN) if e["id"] > after_id]
    longest = max(entries, key=lambda e: e["duration"], default=None)
    if longest is None:
        return 0.0, 0.0
    over = sum(1 for e in entries if e["duration"] > BLOCK_GOAL_MS * 1000)
    if PROGRESS:
        words = _text(longest["command"]).split(" ")
        names = {script.sha: name for name, script in mirror.scripts(ctx).items()}
        what = names.get(words[1], words[1]) if words[0] == "EVALSHA" and len(words) > 1 else words[0]
        print(f"    longest: {longest['duration'] / 1000:.2f} ms {what}", flush=True)
    return float(longest["duration"]) / 1000, float(over)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@contextmanager
def _slowlog(ctx: AppContext) -> Iterator[list[float]]:
    """Log the Valkey commands of SLOWLOG_FLOOR_US or longer only while the measured block runs.

    The log is never emptied (SLOWLOG RESET): freeing a log of thousands of entries made the
    commands that came after it slow for a while, in Valkey's memory allocator, not in the
    command. At a million online, the first page of a default max change read 155-177 ms after
    each reset of the previous change's log, against 4-6 ms with no reset. The block's entries
    are those with a higher id than the newest entry before it.
    """
    out: list[float] = []
    newest = ctx.valkey.slowlog_get(1)
    after_id = int(newest[0]["id"]) if newest else -1
    ctx.valkey.config_set("slowlog-log-slower-than", SLOWLOG_FLOOR_US)
    try:
        yield out
    finally:
        ctx.valkey.config_set("slowlog-log-slower-than", -1)
    out.extend(_slowlog_max_ms(ctx, after_id))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def _all_heartbeats(ctx: AppContext, ms: int) -> None:
    """Every online mitra pings at `ms` (the mirror's heartbeat and available scores), one
    script per 50,000 mitras (one script over a million would block Valkey for seconds)."""
    k = ctx.keys
    total = int(ctx.valkey.zcard(k.heartbeat))
    for _ in range(0, total, 50_000):  # each script takes 50,000 of those not yet at `ms`
        ctx.valkey.eval(
            "local ids = redis.call('ZRANGE', KEYS[1], '-inf', '(' .. ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])"
            " for i = 1, #ids, 1000 do"
            "   local args = {}"
            "   for j = i, math.min(i + 999, #ids) do args[#args + 1] = ARGV[1]; args[#args + 1] = ids[j] end"
            "   redis.call('ZADD', KEYS[1], 'XX', unpack(args))"
            "   redis.call('ZADD', KEYS[2], 'XX', unpack(args))"
            " end return #ids",
            2,
            k.heartbeat,
            k.available,
            ms,
            50_000,
        )


def _stale_some(ctx: AppContext, keep_fresh: int | None, fraction: float | None, ms: int) -> list[str]:
    """Make mitras stale (score `ms`): all but `keep_fresh`, or `fraction` of them; return the stale ids."""
    k = ctx.keys
    if keep_fresh is not None:  # all of the heartbeat set but `keep_fresh` available ones
        fresh = {str(i) for i in ctx.valkey.zrange(k.available, 0, keep_fresh - 1)}
        stale = [str(i) for i in ctx.valkey.zrange(k.heartbeat, 0, -1) if str(i) not in fresh]
    else:
        stale = [str(i) for i in ctx.valkey.zrange(k.heartbeat, 0, -1)][:: int(1 / (fraction or 1))]
    pipe = ctx.valkey.pipeline(transaction=False)
    for i in range(0, len(stale), 5000):
        chunk = dict.fromkeys(stale[i : i + 5000], ms)
        pipe.zadd(k.heartbeat, chunk)
        pipe.zadd(k.available, chunk, xx=True)
    if (
        keep_fresh is not None
    ):  # the kept ones ping now: at a million, staling the rest takes longer than freshness lasts
        now = ctx.now_ms()
        pipe.zadd(k.heartbeat, dict.fromkeys(fresh, now), xx=True)
        pipe.zadd(k.available, dict.fromkeys(fresh, now), xx=True)
    pipe.execute()
    return stale


def _reonline(ctx: AppContext) -> None:
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE mitras SET is_online = true, last_heartbeat_at = now() WHERE NOT is_online")
        tx.execute("DELETE FROM mitra_status_logs")
        tx.commit()
    seed.seed_from_postgres(ctx)
    time.sleep(SETTLE_SECONDS)


def _wal_lsn(ctx: AppContext) -> str:
    return str(ctx.db.scalar("SELECT CAST(pg_current_wal_insert_lsn() AS text)"))


@contextmanager
def _wal(ctx: AppContext) -> Iterator[list[float]]:
    """Bytes of WAL Postgres wrote while the block ran (a quiet server of the bench's own: every
    byte is the block's, plus the few of the two LSN reads)."""
    out: list[float] = []
    before = _wal_lsn(ctx)
    yield out
    out.append(
        float(
            ctx.db.scalar("SELECT pg_wal_lsn_diff(CAST(:a AS pg_lsn), CAST(:b AS pg_lsn))", a=_wal_lsn(ctx), b=before)
        )
    )


def _valkey_bytes(ctx: AppContext) -> int:
    """Valkey's `used_memory` (INFO memory): what the data set takes, allocator included."""
    return int(ctx.valkey.info("memory")["used_memory"])


def run_size(ctx: AppContext, n: int, repeat: int) -> dict[str, float]:
    """Every path's median at n online mitras, and what it took to set them up."""
    setup_started = time.perf_counter()
    _populate(ctx, n, spread_seconds=30)  # pings spread over the last 30 s, as a 30 s interval leaves them
    ctx.valkey.flushdb()
    time.sleep(SETTLE_SECONDS)  # the flush frees in the background too
    empty = _valkey_bytes(ctx)
    report = seed.seed_from_postgres(ctx)
    assert report.ran and report.online == n, report
    out: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        out.setdefault(name, []).append(value)
        if PROGRESS:
            print(f"  {n:,} online: {name} {value:.2f}", flush=True)

    def add_longest(name: str, block: list[float]) -> None:
        """The longest Valkey command of a measured block, and how many took over BLOCK_GOAL_MS."""
        add(f"{name}_block_ms", block[0])
        add(f"{name}_over_50ms", block[1])

    add("setup_s", time.perf_counter() - setup_started)
    time.sleep(SETTLE_SECONDS)
    add("valkey_bytes_per_mitra", (_valkey_bytes(ctx) - empty) / n)

    # heartbeat-mirror: every online mitra pinged since the last pass. The first passes create
    # the mitra_pings rows; in the steady state every mitra has its row, so each pass moves them
    # (HOT updates).
    for name, offset in (("heartbeat_mirror", 1), ("heartbeat_mirror_steady", repeat + 1)):
        for i in range(repeat):
            _all_heartbeats(ctx, ctx.now_ms() + offset + i)
            assert int(ctx.valkey.zcard(ctx.keys.heartbeat)) == n
            with _slowlog(ctx) as block, _wal(ctx) as wal:
                ms, result = _timed(lambda: jobs.heartbeat_mirror_pass(ctx))
            assert result["mirrored"] == n, result
            add(f"{name}_ms", ms)
            add_longest(name, block)
            add(f"{name}_wal_bytes", wal[0])

    # auto-offline: 1 % stale, through the runner's advisory lock.
    sweep = jobs.sweep("auto-offline", ctx.settings)
    for _ in range(repeat):
        _reonline(ctx)
        stale = _stale_some(ctx, None, 0.01, ctx.now_ms() - 3_600_000)
        with _slowlog(ctx) as block, _wal(ctx) as wal:
            ms, result = _timed(lambda: runner.run_locked_pass(ctx, sweep))
        assert result is not None and result["offlined"] == len(stale), (result, len(stale))
        add("auto_offline_ms", ms)
        add_longest("auto_offline", block)
        add("auto_offline_wal_bytes", wal[0])
    _reonline(ctx)

    # find_available(25): everyone fresh, then only 10 fresh of n available. At a million the
    # passes above take minutes, longer than a ping stays fresh: everyone pings again first.
    _all_heartbeats(ctx, ctx.now_ms())
    for _ in range(repeat * 4):
        ms, picked = _timed(lambda: mirror.find_available(ctx, 25, []))
        assert picked is not None and len(picked) == 25
        add("find_fresh_ms", ms)
    _stale_some(ctx, FRESH_IN_BLACKOUT, None, ctx.now_ms() - 3_600_000)
    for _ in range(repeat * 4):
        with _slowlog(ctx) as block:
            ms, picked = _timed(lambda: mirror.find_available(ctx, 25, []))
        assert picked is not None and len(picked) == FRESH_IN_BLACKOUT, picked
        add("find_blackout_ms", ms)
        add_longest("find_blackout", block)

    # default max: a staff change of the default re-derives every online mitra, page by page.
    # The mirror only (Postgres keeps 1): 2 frees the busy tenth, 1 fills it again, so every
    # change moves entries; the mirror ends on 1, as Postgres has it.
    for i in range(repeat * 2):
        with _slowlog(ctx) as block:
            ms, ok = _timed(lambda value=2 - i % 2: mirror.set_default_max(ctx, value))
        assert ok
        add("default_max_ms", ms)
        add_longest("default_max", block)

    # reseed: the whole seed, and the longest Valkey command during it, on connections with the
    # deployed statement_timeout and read timeout (the bulk setup's are longer): every
    # statement of the seed must end inside them at any size.
    _reonline(ctx)
    bulk_db = ctx.db
    ctx.db = Database(dataclasses.replace(ctx.settings, db_statement_timeout_ms=DEPLOYED.db_statement_timeout_ms))  # type: ignore[misc]
    for _ in range(repeat):
        with _slowlog(ctx) as block, _wal(ctx) as wal:
            ms, report = _timed(lambda: seed.seed_from_postgres(ctx))
        assert report.ran and report.online == n, report
        add("reseed_ms", ms)
        add_longest("reseed", block)
        add("reseed_wal_bytes", wal[0])
        time.sleep(SETTLE_SECONDS)
    ctx.db.close()
    ctx.db = bulk_db  # type: ignore[misc]
    return {name: statistics.median(values) for name, values in out.items()}


@contextmanager
def servers() -> Iterator[AppContext]:
    """A context on embedded Postgres and Valkey of its own (the slow log off until _slowlog)."""
    with own_servers("bench-paths-") as ctx:
        ctx.valkey.config_set("slowlog-log-slower-than", -1)  # on only inside _slowlog
        ctx.valkey.config_set("slowlog-max-len", SLOWLOG_MAX_LEN)
        yield ctx


def measure(sizes: list[int], repeat: int, progress: bool = False) -> dict[int, dict[str, float]]:
    """{online mitras: {figure: median ms}} (with `progress`, each size printed when done)."""
    out = {}
    with servers() as ctx:
        for n in sizes:
            out[n] = run_size(ctx, n, repeat)
            if progress:
                print(f"{n:,} online: {out[n]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default=SIZES)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    global PROGRESS
    PROGRESS = True
    from bench.report import cpu_probe_ms

    print(f"load average {os.getloadavg()}, CPU probe {cpu_probe_ms():.0f} ms", flush=True)
    results = measure([int(s) for s in args.sizes.split(",")], args.repeat, progress=True)
    print(f"load average {os.getloadavg()}, CPU probe {cpu_probe_ms():.0f} ms", flush=True)
    names = sorted({name for r in results.values() for name in r})
    print(f"{'figure (median ms)':<28}" + "".join(f"{n:>12,}" for n in results))
    for name in names:
        print(f"{name:<28}" + "".join(f"{results[n][name]:>12.2f}" for n in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
