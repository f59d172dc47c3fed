"""Heartbeat function throughput next to a bare function, both served the way the runtime
serves them: `functions-framework` (3.10.2 runs gunicorn, one worker, gthread, 4 threads per
CPU), one process each, against the same embedded Postgres and Valkey.

The bare function checks the same JWT (HS256) and runs the same heartbeat script (one Valkey
round trip), with none of the project's edge around it; the heartbeat function is the real
entry point. Several client processes keep one keep-alive connection each busy. Each round measures both
back to back, bare first in even rounds and heartbeat first in odd ones, and gives one ratio;
the figure is the median of the rounds' ratios, so load drifting on the machine between rounds
hits both sides of a pair alike. Prints requests/s of each (medians) and the ratio (the goal:
heartbeat >= 95 % of bare).

    .venv/bin/python -m bench.heartbeat_throughput [--seconds 4] [--rounds 3] [--clients 3]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROUTE = "/api/mitra/status/heartbeat"


def _client(port: int, token: str, seconds: float, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Length": "0"}
    done = errors = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        conn.request("POST", ROUTE, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status == 200:
            done += 1
        else:
            errors += 1
    out.put((done, errors))


def _rate(port: int, token: str, seconds: float, clients: int) -> float:
    out: Any = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_client, args=(port, token, seconds, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    errors = sum(e for _, e in results)
    if errors:
        raise RuntimeError(f"{errors} non-200 answers on port {port}")
    return sum(d for d, _ in results) / seconds


def _serve(source: Path, target: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    from infra.embedded import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "functions_framework", "--target", target, "--source", str(source), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{target} did not start")


def _online(ctx: Any, n: int) -> None:
    """n other online mitras with fresh pings, then a reseed (the mirror the script runs on).

    The bulk insert runs on a patient pool (bench.common): at a million mitras it outlasts the
    deployed statement timeout the measured functions keep."""
    from bench.common import patient_database
    from shared import availability

    bulk = patient_database(ctx.settings)
    try:
        _insert_crowd(bulk, n)
    finally:
        bulk.close()
    availability.seed_from_postgres(ctx)


def _insert_crowd(db: Any, n: int) -> None:
    with db.transaction() as tx:
        tx.execute("DELETE FROM mitras WHERE display_name = 'crowd'")
        tx.execute(
            "INSERT INTO mitras (phone_e164, display_name, is_online, last_heartbeat_at)"
            " SELECT '+6282' || lpad(g::text, 9, '0'), 'crowd', true, now() FROM generate_series(1, :n) g",
            n=n,
        )
        tx.commit()


def measure(
    seconds: float = 4.0, rounds: int = 5, clients: int = 3, sizes: tuple[int, ...] = (0,)
) -> dict[int, dict[str, float]]:
    """{online mitras: {bare_rps, heartbeat_rps, ratio}} (medians over the rounds; the ratio is
    the median of the per-round ratios)."""
    from infra import embedded, migrate

    with embedded.services() as services:
        env = {
            **os.environ,
            **services,
            "PYTHONPATH": str(ROOT),
            "BESTIE_ROOT": str(ROOT),
            "AUTH_JWT_SECRET": "bench-" + uuid.uuid4().hex * 2,
            "OTP_HMAC_SECRET": "bench-otp-" + uuid.uuid4().hex * 2,
            "VALKEY_PREFIX": f"bench{uuid.uuid4().hex[:6]}:",
        }
        os.environ.update({k: env[k] for k in ("AUTH_JWT_SECRET", "OTP_HMAC_SECRET", "VALKEY_PREFIX", *services)})
        from shared import availability, context
        from shared.auth import tokens
        from shared.auth.principal import Principal

        ctx = context.init()
        migrate.migrate(ctx.db)
        with ctx.db.transaction() as tx:
            mitra = str(
                tx.scalar(
                    "INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'bench') RETURNING id",
                    p="+62819" + str(uuid.uuid4().int)[:8],
                )
            )
            sid = tokens.create_session(tx, ctx.settings, "mitra", mitra, ctx.now())
            tx.commit()
        availability.ensure_seeded(ctx)
        token = tokens.encode_access(ctx.settings, Principal("mitra", mitra, sid), ctx.now())
        servers = {
            "bare": _serve(ROOT / "bench/_functions/bare.py", "bare_heartbeat", env),
            "heartbeat": _serve(ROOT / "functions/heartbeat/main.py", "mitra_status_heartbeat", env),
        }
        out: dict[int, dict[str, float]] = {}
        try:
            for n in sizes:
                _online(ctx, n)
                availability.set_online(ctx, mitra, "bench")
                for _, port in servers.values():  # warm: scripts loaded, pools filled
                    _rate(port, token, 0.5, clients)
                rates: dict[str, list[float]] = {"bare": [], "heartbeat": []}
                for i in range(rounds):
                    # Each round measures both back to back, in alternating order, and yields one
                    # ratio: load that drifts between rounds hits the two sides of a pair alike.
                    for name in ("bare", "heartbeat") if i % 2 == 0 else ("heartbeat", "bare"):
                        rates[name].append(_rate(servers[name][1], token, seconds, clients))
                ratios = [beat / bare for bare, beat in zip(rates["bare"], rates["heartbeat"], strict=True)]
                out[n] = {
                    "bare_rps": statistics.median(rates["bare"]),
                    "heartbeat_rps": statistics.median(rates["heartbeat"]),
                    "ratio": statistics.median(ratios),
                }
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)
            ctx.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,100000", help="online mitras in the mirror")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    for n, r in measure(args.seconds, args.rounds, args.clients, sizes).items():
        print(
            f"{n:>8} online: bare {r['bare_rps']:6.0f} req/s, heartbeat {r['heartbeat_rps']:6.0f} req/s"
            f" ({r['ratio']:.0%} of bare; goal >= 95 %)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
