"""What trusting the access mirror costs: the repair an instance runs before it trusts Valkey
again (cold start, new Valkey connection, failed access write), next to a steady-state guard
check, with 1,000 and 10,000 sessions revoked within the last access-token lifetime (one
hour: a logout every 0.36 s all hour long is the larger case) and 100 mitras deactivated.

Prints the median of `revocation.repair` and of the guard's revocation check. Always runs on
embedded servers of its own.

    .venv/bin/python -m bench.access_repair [--sizes 1000,10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra import embedded, migrate
from shared.auth import revocation
from shared.config import Settings
from shared.context import AppContext

DEACTIVATED = 100


def _median_ms(fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _populate(ctx: AppContext, revoked: int) -> str:
    """`revoked` sessions revoked in the last hour, DEACTIVATED inactive mitras; returns a live session id."""
    with ctx.db.transaction() as tx:
        tx.execute("TRUNCATE auth_sessions, mitras CASCADE")
        tx.execute(
            "INSERT INTO auth_sessions (user_type, user_id, expires_at, revoked_at, revoked_reason)"
            " SELECT 'customer', gen_random_uuid(), now() + interval '30 days',"
            "        now() - (g % 3500) * interval '1 second', 'logout'"
            " FROM generate_series(1, :n) g",
            n=revoked,
        )
        tx.execute(
            "INSERT INTO mitras (phone_e164, display_name, is_active)"
            " SELECT '+6281' || lpad(g::text, 9, '0'), 'm' || g, false FROM generate_series(1, :n) g",
            n=DEACTIVATED,
        )
        live = tx.scalar(
            "INSERT INTO auth_sessions (user_type, user_id, expires_at)"
            " VALUES ('customer', gen_random_uuid(), now() + interval '30 days') RETURNING id"
        )
        tx.commit()
    return str(live)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-access-"))
    pg = embedded.EmbeddedPostgres(root / "postgres").start()
    vk = embedded.EmbeddedValkey(root / "valkey").start()
    try:
        settings = dataclasses.replace(
            Settings.from_env(), database_url=pg.url, valkey_url=vk.url, valkey_prefix="bench:"
        )
        ctx = AppContext(settings)
        migrate.migrate(ctx.db)
        print("{:>8} {:>12} {:>16}".format("revoked", "repair ms", "guard check ms"))
        for n in (int(s) for s in args.sizes.split(",")):
            live = _populate(ctx, n)
            ctx.valkey.set(ctx.keys.seeded, "bench")
            repair_ms = _median_ms(lambda: revocation.repair(ctx), args.repeat)
            assert revocation.mirror_trusted(ctx)
            check_ms = _median_ms(lambda sid=live: revocation.is_revoked(ctx, sid), args.repeat * 20)
            print(f"{n:>8} {repair_ms:>12.2f} {check_ms:>16.3f}")
        ctx.close()
    finally:
        vk.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
