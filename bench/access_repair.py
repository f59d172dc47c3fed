"""What trusting the access mirror costs: the repair an instance runs before it trusts Valkey
again (cold start, new Valkey connection, failed access write), next to a steady-state guard
check, with 1,000 and 10,000 sessions revoked within the last access-token lifetime (one
hour: a logout every 0.36 s all hour long is the larger case) and 100 mitras deactivated.

Prints the median of `access.repair`, of the guard's revocation check, and of the same
check when it also reads the Postgres miss count (once per `access.CHECK_SECONDS` per
instance). Always runs on embedded servers of its own.

    .venv/bin/python -m bench.access_repair [--sizes 1000,10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import math

from bench.common import median_ms, own_servers
from shared.auth import revocation
from shared.availability import access
from shared.context import AppContext

DEACTIVATED = 100


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
    with own_servers("bench-access-") as ctx:
        print("{:>8} {:>12} {:>16} {:>22}".format("revoked", "repair ms", "guard check ms", "with miss check ms"))
        for n in (int(s) for s in args.sizes.split(",")):
            live = _populate(ctx, n)
            ctx.valkey.set(ctx.keys.seeded, "bench")
            repair_ms = median_ms(lambda: access.repair(ctx), args.repeat)
            assert access.mirror_trusted(ctx)
            check_ms = median_ms(lambda sid=live: revocation.is_revoked(ctx, sid), args.repeat * 20)
            state = access._trust(ctx)  # the once-a-second check, made due on each call

            def checked(sid: str = live, state: access._Trust = state) -> bool:
                state.checked_at = -math.inf
                return revocation.is_revoked(ctx, sid)

            miss_check_ms = median_ms(checked, args.repeat * 20)
            print(f"{n:>8} {repair_ms:>12.2f} {check_ms:>16.3f} {miss_check_ms:>22.3f}")


if __name__ == "__main__":
    main()
