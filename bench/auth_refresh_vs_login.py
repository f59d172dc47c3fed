"""Refresh needs no bcrypt: the refresh endpoint's median next to the login endpoint's, and
next to its floor: the same number of Postgres round trips as one refresh makes (BEGIN, a
`SELECT 1` per statement, ROLLBACK) on the same pooled connection, timed in the same run.

Refresh is timed twice: through the real entry point built with functions-framework's
create_app (the HTTP layer every route shares included), and as the refresh path itself
(`cc_users.refresh_session`: the token hashes, the rotation statement, the account read, the
access token signed), which is what the goal's ratio compares with the floor. The three are
interleaved, one of each per round, so the machine's drift hits all of them alike. A round
trip is counted each time pg8000 waits for the server's replies (up to ReadyForQuery).
Both run in one process against the same Postgres and Valkey (embedded unless DATABASE_URL /
VALKEY_URL are set). Login pays one bcrypt check at BCRYPT_COST (the production default, 12,
unless the variable is set); refresh is a SHA-256 lookup and one short transaction.
Run: `.venv/bin/python -m bench.auth_refresh_vs_login`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from typing import Any

from bench.common import median_ms

LOGINS = int(os.environ.get("BENCH_LOGINS", "15"))
REFRESHES = int(os.environ.get("BENCH_REFRESHES", "200"))


def measure(logins: int = LOGINS, refreshes: int = REFRESHES) -> dict[str, float]:
    """{login_ms, refresh_ms}: medians through the real entry points, and the bcrypt_cost used."""
    from infra import embedded, gateway, migrate

    with embedded.services() as env:
        os.environ.update(env)
        os.environ.setdefault("AUTH_JWT_SECRET", "bench-secret-" + uuid.uuid4().hex * 2)
        os.environ.setdefault("OTP_HMAC_SECRET", "bench-otp-" + uuid.uuid4().hex * 2)
        os.environ.setdefault("VALKEY_PREFIX", f"bench{uuid.uuid4().hex[:6]}:")
        from shared import config, context, manifest
        from shared.auth import cc_users, cookies

        os.environ.setdefault("BCRYPT_COST", str(config.default("BCRYPT_COST")))
        ctx = context.init()
        migrate.migrate(ctx.db)
        email, password = f"bench-{uuid.uuid4().hex[:8]}@bestie.test", "Benchpass1"
        cc_users.create_user(ctx, email, password, "operator")
        apps = {
            ep: gateway.build_app(manifest.load().by_entry_point(ep)).test_client()
            for ep in ("auth_cc_login", "auth_cc_refresh")
        }

        def login() -> Any:
            resp = apps["auth_cc_login"].post("/internal/auth/login", json={"email": email, "password": password})
            assert resp.status_code == 200, resp.json
            return resp

        first = login()
        cookie = first.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
        state = {"cookie": cookie}

        def refresh() -> None:
            c = apps["auth_cc_refresh"]
            c.set_cookie(cookies.NAME, state["cookie"], path="/internal/auth")
            resp = c.post("/internal/auth/refresh")
            assert resp.status_code == 200, resp.json
            state["cookie"] = resp.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]

        def service() -> None:  # the same rotation without the HTTP layer every route shares
            issued, _ = cc_users.refresh_session(ctx, state["cookie"])
            state["cookie"] = issued.refresh_token

        for _ in range(5):  # warm pools and code paths
            refresh()
            service()
        login_ms = median_ms(login, logins) if logins else float("nan")
        trips = _round_trips(service)
        assert trips == _round_trips(refresh), "the entry point and the service make the same round trips"

        def floor() -> None:  # BEGIN, the SELECT 1s, ROLLBACK: `trips` round trips on one connection
            with ctx.db.transaction() as tx:
                for _ in range(max(0, trips - 2)):
                    tx.scalar("SELECT 1")

        # Interleaved, one of each per round: the machine's speed drifts within seconds, and a
        # ratio of two blocks timed one after the other measured the drift as much as the code.
        times: dict[str, list[float]] = {"refresh": [], "service": [], "floor": []}
        fns = {"refresh": refresh, "service": service, "floor": floor}
        for _ in range(refreshes):
            for name, fn in fns.items():
                started = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - started) * 1000)
        refresh_ms, service_ms, floor_ms = (statistics.median(times[k]) for k in ("refresh", "service", "floor"))
        cost = ctx.settings.bcrypt_cost
        ctx.close()
    return {
        "login_ms": login_ms,
        "refresh_ms": refresh_ms,
        "service_ms": service_ms,
        "round_trips": trips,
        "floor_ms": floor_ms,
        "bcrypt_cost": cost,
    }


def _round_trips(call: Any) -> int:
    """How many round trips `call` makes to Postgres: each time pg8000's connection waits for
    the server's replies (up to ReadyForQuery), counted on the connection itself."""
    from pg8000.core import CoreConnection

    count = [0]
    originals = {name: getattr(CoreConnection, name) for name in ("handle_messages",)}

    def counting(original: Any) -> Any:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return original(self, *args, **kwargs)

        return run

    try:
        for name, original in originals.items():
            setattr(CoreConnection, name, counting(original))
        call()
    finally:
        for name, original in originals.items():
            setattr(CoreConnection, name, original)
    return count[0]


def main() -> int:
    r = measure()
    login_ms, refresh_ms = r["login_ms"], r["refresh_ms"]
    print(f"login   median {login_ms:8.2f} ms  (n={LOGINS}, bcrypt cost {r['bcrypt_cost']:.0f})")
    print(f"refresh median {refresh_ms:8.2f} ms  (n={REFRESHES}, through the entry point)")
    print(f"login / refresh = {login_ms / refresh_ms:.0f}x")
    print(f"refresh service {r['service_ms']:8.2f} ms  (cc_users.refresh_session: SHA-256 lookup, rotation, JWT)")
    print(f"refresh floor   {r['floor_ms']:8.2f} ms  ({r['round_trips']} round trips: BEGIN, SELECT 1s, ROLLBACK)")
    print(
        f"service / floor = {r['service_ms'] / r['floor_ms']:.2f}x;"
        f" entry point / floor = {refresh_ms / r['floor_ms']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
