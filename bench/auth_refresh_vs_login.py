"""Refresh needs no bcrypt: the refresh endpoint's median next to the login endpoint's, and
next to its floor: the same number of Postgres round trips as one refresh makes, each a
`SELECT 1` on the same pooled connection, timed in the same run.

Both run in one process against the same Postgres and Valkey (embedded unless DATABASE_URL /
VALKEY_URL are set), through the real entry points built with functions-framework's
create_app. Login pays one bcrypt check at BCRYPT_COST (the production default, 12, unless
the variable is set); refresh is a SHA-256 lookup and one short transaction.
Run: `.venv/bin/python -m bench.auth_refresh_vs_login`.
"""

from __future__ import annotations

import os
import sys
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

        for _ in range(5):  # warm pools and code paths
            refresh()
        login_ms = median_ms(login, logins) if logins else float("nan")
        refresh_ms = median_ms(refresh, refreshes)
        trips = _round_trips(refresh)

        def floor() -> None:  # BEGIN, the SELECT 1s, ROLLBACK: `trips` round trips on one connection
            with ctx.db.transaction() as tx:
                for _ in range(max(0, trips - 2)):
                    tx.scalar("SELECT 1")

        floor_ms = median_ms(floor, refreshes)
        cost = ctx.settings.bcrypt_cost
        ctx.close()
    return {
        "login_ms": login_ms,
        "refresh_ms": refresh_ms,
        "round_trips": trips,
        "floor_ms": floor_ms,
        "bcrypt_cost": cost,
    }


def _round_trips(call: Any) -> int:
    """How many statements (round trips) `call` sends to Postgres, counted on pg8000's connection."""
    from pg8000.core import CoreConnection

    count = [0]
    originals = {name: getattr(CoreConnection, name) for name in ("execute_simple", "execute_unnamed")}

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
    print(f"refresh median {refresh_ms:8.2f} ms  (n={REFRESHES}, SHA-256 lookup + rotation)")
    print(f"login / refresh = {login_ms / refresh_ms:.0f}x")
    print(f"refresh floor {r['floor_ms']:8.2f} ms  ({r['round_trips']} SELECT 1 round trips on one connection)")
    print(f"refresh / floor = {refresh_ms / r['floor_ms']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
