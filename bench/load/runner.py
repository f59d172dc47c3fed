"""`make load`: drive two server processes with locust, then check the system's invariants.

1. Start an embedded Postgres and Valkey of its own (never DATABASE_URL / VALKEY_URL), migrate.
2. Seed `--mitras` mitras (one in ten with a max of 2 sessions), `--customers` anonymous
   customers and one control-center admin directly in Postgres, mint their access tokens with
   this run's AUTH_JWT_SECRET (no sign-in route, so no sign-in rate limit is involved), and
   build the availability mirror (the reseed).
3. Start two server processes, each serving every function through the local gateway built
   from the deploy plan (bench/load/serve.py, under gunicorn with gthread workers as
   functions-framework serves a function): two instances sharing only Postgres and Valkey.
4. Fire the plan's Cloud Scheduler jobs (the four sweeps) at shortened intervals, alternating
   between the two servers, for the whole run, as the local scheduler stand-in fires them.
5. Run locust headless in a subprocess (bench/load/locustfile.py; gevent patches stay in that
   process) for `--seconds`, then stop it.
6. After a short quiesce: print p50 / p99 per route and the failures, then check
   tests/support/invariants.py `violations(ctx)` first as the servers left the mirror (no reseed in
   between), and exit 1 on any failed request, failed sweep, 5xx in a server log, or violation.

    .venv/bin/python -m bench.load [--seconds 60] [--mitras 1000] [--customers 100] [--staff 4]
                                   [--summary out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from infra.embedded import EmbeddedPostgres, EmbeddedValkey, free_port

ROOT = Path(__file__).resolve().parent.parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"

# Sweep cadences during the run (production: 30 s, 60 s, 300 s, 30 s), shortened so a 20 s
# run still sees every sweep race the traffic at least once. The servers run one pass per
# invocation (cadences of 60 s in `environment`), so each firing is one pass.
SWEEP_EVERY = {
    "sweep-session-expiry": 5.0,
    "sweep-auto-offline": 10.0,
    "sweep-heartbeat-mirror": 10.0,
    "sweep-availability-reseed": 15.0,
}

PACE = {
    "heartbeat_seconds": 30.0,  # the apps' ping
    "offer_poll_seconds": 15.0,  # stands in for the pairing_offer push
    "offline_chance": 0.01,  # per idle tick (1 s) of an online mitra
    "decline_chance": 0.1,
    "mitra_end_chance": 0.1,  # per tick once it replied twice
    "search_patience_seconds": 12.0,
    "customer_think_seconds": (3.0, 10.0),
    "messages_per_session": 4,
    "wait_seconds": 2,
}

THREADS = 64  # per server process: requests in flight (long polls included)


def environment(database_url: str, valkey_url: str, chaos: bool = False) -> dict[str, str]:
    """The servers' and this driver's settings: one run's secrets, test routes, no sweep auth.

    A chaos run keeps the deployed timeouts (Valkey 1 s, a pool wait of 5 s): the faults must
    time out as they would in production, not hide behind the load test's patience.
    """
    env = {
        "DATABASE_URL": database_url,
        "VALKEY_URL": valkey_url,
        "VALKEY_PREFIX": "load:",
        "AUTH_JWT_SECRET": secrets.token_urlsafe(48),
        "OTP_HMAC_SECRET": secrets.token_urlsafe(32),
        "ENABLE_TEST_ENDPOINTS": "1",
        "SWEEP_AUTH": "none",
        "OTP_PROVIDER": "log",
        "PUSH_PROVIDER": "log",
        "CC_ORIGIN": "https://cc.load.test",
        "TRUSTED_PROXY_HOPS": "0",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": str(THREADS),
        "DB_POOL_TIMEOUT_SECONDS": "30",
        # A busy shared machine stalls a process now and then; that is not the Valkey outage
        # the 1 s production timeout detects (and falls back from).
        "VALKEY_TIMEOUT_SECONDS": "5",
        # One pass per invocation: the driver fires the sweeps itself, on SWEEP_EVERY.
        "MITRA_AUTO_OFFLINE_SWEEP_SECONDS": "60",
        "SESSION_EXPIRY_SWEEP_SECONDS": "60",
    }
    if chaos:
        del env["VALKEY_TIMEOUT_SECONDS"], env["DB_POOL_TIMEOUT_SECONDS"]
    return env


# ---- servers ---------------------------------------------------------------------------------


SPAWNED: list[int] = []  # every server process group started (restarts too): the summary lists them


class Server:
    """One server process (bench.load.serve under gunicorn) on a port it keeps across restarts."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.port = env, log, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            str(THREADS),
            "--timeout",
            "120",
            "--graceful-timeout",
            "10",
            "--keep-alive",  # longer than any idle gap of a user, as the front end keeps its connections
            "120",
            "bench.load.serve:app",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so kill() takes the worker too
            )
        SPAWNED.append(self.proc.pid)

    def wait_ready(self, attempts_left: int = 10) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{self.url}/healthz", timeout=30).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            if self.proc.poll() is not None:
                if attempts_left and "Address already in use" in self.log.read_text(errors="replace")[-4000:]:
                    # A killed server's port can linger a moment in the kernel: bind again shortly.
                    time.sleep(1.0)
                    self.spawn()
                    return self.wait_ready(attempts_left - 1)
                raise RuntimeError(f"server process exited; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server process did not start; see {self.log}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL to the master and its worker at once, as a crashed instance dies: no graceful
        shutdown, and no orphaned worker left serving (and holding the port) until it notices."""
        if self.proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def start_servers(stack: ExitStack, env: dict[str, str], logs: list[Path]) -> list[Server]:
    """One server per log, started at once (each takes seconds to import and connect), stopped
    when the stack unwinds."""
    servers = [Server(env, log) for log in logs]
    stack.callback(stop_servers, servers)
    for srv in servers:
        srv.spawn()
    for srv in servers:
        srv.wait_ready()
    return servers


def stop_servers(servers: list[Server]) -> None:
    """SIGTERM to every server at once, then wait for each: a graceful exit takes a couple of
    seconds (the workers drain their threads), which would add up one server after another."""
    running = [proc for proc in (srv.proc for srv in servers) if proc is not None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for srv in servers:
        srv.proc = None


# ---- data --------------------------------------------------------------------------------------


def seed(ctx: Any, mitras: int, customers: int) -> dict[str, Any]:
    """Mitras, customers and an admin in Postgres with access tokens; then the mirror is built."""
    from shared.auth.principal import Principal
    from shared.auth.tokens import create_session, encode_access
    from shared.availability import api as availability

    now = ctx.now()
    run = uuid.uuid4().int % 10**4

    def token(tx: Any, user_type: str, user_id: str, role: str | None = None) -> str:
        sid = create_session(tx, ctx.settings, user_type, user_id, now)
        return encode_access(ctx.settings, Principal(user_type, user_id, sid, role), now)

    plan: dict[str, Any] = {"mitras": [], "customers": []}
    with ctx.db.transaction() as tx:
        for i in range(mitras):
            mitra_id = str(
                tx.scalar(
                    "INSERT INTO mitras (phone_e164, display_name, max_concurrent_sessions)"
                    " VALUES (:p, :n, :m) RETURNING id",
                    p=f"+62813{run:04d}{i:05d}",
                    n=f"Mitra {i}",
                    m=2 if i % 10 == 0 else None,
                )
            )
            plan["mitras"].append({"id": mitra_id, "token": token(tx, "mitra", mitra_id)})
        for _ in range(customers):
            customer_id = str(tx.scalar("INSERT INTO customers (is_anonymous) VALUES (true) RETURNING id"))
            plan["customers"].append({"id": customer_id, "token": token(tx, "customer", customer_id)})
        admin = str(
            tx.scalar(
                "INSERT INTO control_center_users (email, password_hash, role)"
                " VALUES (:e, 'unused', 'admin') RETURNING id",
                e=f"load-{run}@bestie.test",
            )
        )
        plan["cc_token"] = token(tx, "cc", admin, "admin")
        tx.commit()
    availability.seed_from_postgres(ctx)
    return plan


# ---- sweeps --------------------------------------------------------------------------------------


class Sweeps:
    """The plan's Scheduler jobs fired on SWEEP_EVERY's cadence, round robin over the servers."""

    def __init__(self, urls: list[str]) -> None:
        from infra import gateway
        from infra.local_scheduler import LocalScheduler, job_id

        plan = gateway.local_plan(True)
        self.schedulers = [LocalScheduler(url, plan) for url in urls]
        self.jobs = [(job_id(job), job) for job in plan.jobs]
        self.times: dict[str, list[float]] = {name: [] for name, _ in self.jobs}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i, (name, job) in enumerate(self.jobs):
            every = SWEEP_EVERY.get(name, 15.0)
            thread = threading.Thread(target=self._loop, args=(i, name, job, every), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self, offset: int, name: str, job: Any, every: float) -> None:
        n = offset
        while not self._stop.wait(every if n > offset else 1.0 + offset):
            started = time.perf_counter()
            scheduled = datetime.fromtimestamp(time.time(), UTC).replace(microsecond=0)
            answer = self.schedulers[n % len(self.schedulers)].fire(job, scheduled)
            if answer is None:
                self.failures.append(f"{name} at {scheduled.isoformat()}")
            else:
                self.times[name].append((time.perf_counter() - started) * 1000)
            n += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)


# ---- locust and its report --------------------------------------------------------------------


def run_locust(plan_path: Path, users: int, seconds: int, out: Path) -> int:
    """Run the locustfile headless for `seconds`; the stats land in out/stats_*.csv."""
    spawn_rate = max(20, users // 5)
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "10",
        "--csv",
        str(out / "stats"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    with (out / "locust.log").open("wb") as log:
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env={**os.environ, "LOAD_PLAN": str(plan_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=seconds + 180,
            check=False,
        )
    return done.returncode


def read_stats(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-route rows, failure rows) from locust's CSV files."""
    routes = []
    with (out / "stats_stats.csv").open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            routes.append(
                {
                    "route": row["Name"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "p50_ms": _num(row["50%"]),
                    "p99_ms": _num(row["99%"]),
                    "max_ms": _num(row["Max Response Time"]),
                    "rps": float(row["Requests/s"]),
                }
            )
    failures = []
    failures_csv = out / "stats_failures.csv"
    if failures_csv.exists():
        with failures_csv.open() as f:
            failures = [
                {"route": r["Name"], "error": r["Error"], "count": int(r["Occurrences"])} for r in csv.DictReader(f)
            ]
    return routes, failures


def _num(text: str) -> float:
    return float(text) if text not in ("", "N/A") else 0.0


def table(routes: list[dict[str, Any]], sweeps: dict[str, list[float]]) -> str:
    head = ("route", "requests", "errors", "p50 ms", "p99 ms", "max ms", "req/s")
    rows = [
        (
            r["route"],
            str(r["requests"]),
            str(r["failures"]),
            f"{r['p50_ms']:.0f}",
            f"{r['p99_ms']:.0f}",
            f"{r['max_ms']:.0f}",
            f"{r['rps']:.1f}",
        )
        for r in sorted(routes, key=lambda r: r["route"].split(" ", 1)[1])
    ]
    total = sum(r["requests"] for r in routes)
    rows.append(
        (
            "all routes",
            str(total),
            str(sum(r["failures"] for r in routes)),
            "",
            "",
            "",
            f"{sum(r['rps'] for r in routes):.1f}",
        )
    )
    for name, times in sorted(sweeps.items()):
        if times:
            rows.append(
                (f"sweep {name}", str(len(times)), "", f"{statistics.median(times):.0f}", "", f"{max(times):.0f}", "")
            )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in [head, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# The JSON log lines of the app, and gunicorn's own (a worker timeout, an error handling a request).
_ERROR_MARKS = ('"severity": "ERROR"', '"severity": "CRITICAL"', "Traceback", "[ERROR]", "[CRITICAL]")


def server_errors(logs: list[Path]) -> list[str]:
    """Lines of the servers' logs that report a 5xx or an unhandled exception."""
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if any(mark in line for mark in _ERROR_MARKS):
                found.append(f"{log.name}: {line[:2000]}")
    return found


# ---- the run ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--mitras", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--staff", type=int, default=4)
    parser.add_argument("--summary", type=Path, help="write the results as JSON here")
    parser.add_argument("--chaos", action="store_true", help="faults during the run (bench/load/chaos.py)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, CSV) and print its path")
    args = parser.parse_args(argv)

    # SIGTERM (a test's timeout, a supervisor) unwinds like Ctrl-C: servers, locust and the
    # embedded databases are stopped by the `with` blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="bestie-load-"))
    try:
        return _run(args, work)
    finally:
        if args.keep:
            print(f"run folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    with ExitStack() as stack:
        pg = EmbeddedPostgres(work / "postgres", extra_settings={"max_connections": "400"}).start()
        stack.callback(pg.stop)
        vk = EmbeddedValkey(work / "valkey").start()
        stack.callback(vk.stop)
        env = environment(pg.url, vk.url, args.chaos)
        os.environ.update(env)

        from infra import migrate

        ctx = _context()
        stack.callback(ctx.close)
        migrate.migrate(ctx.db)
        t0 = time.perf_counter()
        plan = seed(ctx, args.mitras, args.customers)
        print(
            f"seeded {args.mitras} mitras, {args.customers} customers in {time.perf_counter() - t0:.1f} s", flush=True
        )

        logs = [work / "server-a.log", work / "server-b.log"]
        if args.chaos:
            logs.append(work / "server-c.log")  # an instance that serves only the probes
        servers = start_servers(stack, env, logs)
        idle = servers[2] if args.chaos else None
        servers = servers[:2]  # a copy: start_servers stops every one it started, the idle one too
        urls = [srv.url for srv in servers]
        business_path = work / "business.json"
        plan.update(hosts=urls, staff=args.staff, pace=PACE, business_out=str(business_path))
        plan_path = work / "plan.json"
        plan_path.write_text(json.dumps(plan))
        plan_path.chmod(0o600)

        sweeps = Sweeps(urls)
        sweeps.start()
        users = args.mitras + args.customers + args.staff
        load_before = os.getloadavg()[0]
        if args.chaos:
            assert idle is not None
            faults, probes = _chaos(ctx, pg, vk, servers, idle, args.seconds)
        print(f"locust: {users} users on {', '.join(urls)} for {args.seconds} s", flush=True)
        code = run_locust(plan_path, users, args.seconds, work)
        sweeps.stop()
        time.sleep(3)  # quiesce: requests the stopped users left in flight finish on the servers
        if args.chaos:
            faults.join(timeout=120)
            probes.stop()
            return _judge_chaos(ctx, args, faults, probes, logs, sweeps, code, work)

        routes, failures = read_stats(work)
        errors = sum(r["failures"] for r in routes)
        print(table(routes, sweeps.times), flush=True)
        business = json.loads(business_path.read_text()) if business_path.exists() else {}
        for answer, n in sorted(business.items()):
            print(f"expected 409 (business, counted as success): {n} x {answer}")
        for f in failures:
            print(f"FAILED {f['count']} x {f['route']}: {f['error']}")
        for f in sweeps.failures:
            print(f"FAILED sweep {f}")
        logged = server_errors(logs)
        for line in logged[:20]:
            print(f"SERVER {line}")

        from tests.support.invariants import violations

        broken = violations(ctx)
        for v in broken[:50]:
            print(f"VIOLATION {v[:400]}")
        counts = ctx.db.rows("SELECT status, count(*) AS n FROM chat_sessions GROUP BY status ORDER BY status")
        messages = ctx.db.scalar("SELECT count(*) FROM chat_messages WHERE sender_type <> 'system'")
        outcome = {
            "seconds": args.seconds,
            "mitras": args.mitras,
            "customers": args.customers,
            "routes": routes,
            "failures": failures,
            "errors": errors,
            "business_409": business,
            "sweep_failures": sweeps.failures,
            "sweeps": {k: len(v) for k, v in sweeps.times.items()},
            "server_errors": logged,
            "violations": broken,
            "sessions": {r["status"]: int(r["n"]) for r in counts},
            "messages": int(messages or 0),
            "locust_exit": code,
            "server_pids": SPAWNED,
        }
        outcome["load_average"] = [load_before, os.getloadavg()[0]]
        print(f"sessions by status: {outcome['sessions']}; chat messages: {outcome['messages']}")
        print(f"load average (1 min) at start / end: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
        if args.summary:
            args.summary.write_text(json.dumps(outcome, indent=2))
        ok = code == 0 and not errors and not sweeps.failures and not logged and not broken
        print(
            f"{'PASS' if ok else 'FAIL'}: {sum(r['requests'] for r in routes)} requests, {errors} errors, "
            f"{len(sweeps.failures)} failed sweeps, {len(logged)} server error lines, {len(broken)} violations"
        )
        return 0 if ok else 1
    return 1


def _chaos(ctx: Any, pg: Any, vk: Any, servers: list[Server], idle: Server, seconds: int) -> tuple[Any, Any]:
    """Start the fault schedule and the probes (bench/load/chaos.py) for a run of `seconds`."""
    from bench.common import active_sessions
    from bench.load import chaos
    from shared import availability

    probe = active_sessions(ctx, 1)[0]
    mitra_id = probe.mitra_principal.user_id
    availability.set_online(ctx, mitra_id, "chaos")
    plan = {
        "chaos_session": probe.session,
        "chaos_customer": probe.customer["Authorization"].removeprefix("Bearer "),
        "chaos_mitra": probe.mitra["Authorization"].removeprefix("Bearer "),
        "chaos_mitra_id": mitra_id,
    }

    def valkey_killed_empty() -> None:
        vk.proc.kill()
        vk.proc.wait()
        vk.proc = None
        vk.start()  # not persistent: it comes back empty

    def postgres_restarted() -> None:
        pg.stop()
        pg.start()

    def server_killed() -> None:
        servers[1].kill()
        servers[1].start()

    faults = chaos.Faults(
        seconds,
        {
            "valkey_killed_empty": valkey_killed_empty,
            "valkey_paused": lambda: chaos.pause(vk.proc.pid),
            "postgres_restarted": postgres_restarted,
            "server_killed": server_killed,
        },
    )
    probes = chaos.Probes(servers[0].url, servers[1].url, idle.url, plan, faults)
    probes.valkey_losses = 1  # the kill-and-restart-empty fault
    faults.start()
    probes.start()
    return faults, probes


def _judge_chaos(
    ctx: Any,
    args: argparse.Namespace,
    faults: Any,
    probes: Any,
    logs: list[Path],
    sweeps: Sweeps,
    code: int,
    work: Path,
) -> int:
    """Check every invariant after a chaos run; print the checks, their counts and the recoveries."""
    from bench.load import chaos
    from shared.sweeps import jobs
    from tests.support.invariants import violations

    problems = list(faults.errors) + list(probes.checks.violations)
    problems += _final_reseed(ctx)  # as the reseed sweep would after the Valkey loss
    jobs.heartbeat_mirror_pass(ctx)
    problems += chaos.chat_exactly_once(ctx, probes)
    problems += chaos.heartbeats_persisted(ctx, probes, mirror_interval=SWEEP_EVERY["sweep-heartbeat-mirror"])
    broken = violations(ctx)
    probes.checks.ran["invariants"] = 1
    problems += broken
    outside = [line for at, line in chaos.server_5xx(logs) if not faults.inside(at)]
    problems += [f"5xx outside the fault windows: {line}" for line in outside]
    for kind, n in sorted(probes.checks.ran.items()):
        print(f"check {kind}: ran {n} times")
        if n == 0:
            problems.append(f"the {kind} check never ran: it proves nothing")
    chaos.recovery(faults, probes)
    for window in faults.windows:
        print(f"fault {window.name}: {window.ended - window.started:.1f} s, recovered after {window.recovered} s")
    routes, _ = read_stats(work)
    requests_total = sum(r["requests"] for r in routes)
    failed = sum(r["failures"] for r in routes)
    print(table(routes, sweeps.times), flush=True)
    print(f"locust: {requests_total} requests, {failed} failed (inside fault windows by design); locust exit {code}")
    for problem in problems[:50]:
        print(f"VIOLATION {problem[:600]}")
    outcome = {
        "seconds": args.seconds,
        "requests": requests_total,
        "failed_requests": failed,
        "checks": probes.checks.ran,
        "faults": [
            {"name": w.name, "seconds": round(w.ended - w.started, 2), "recovered": w.recovered} for w in faults.windows
        ],
        "violations": problems,
        "sweeps": {k: len(v) for k, v in sweeps.times.items()},
        "server_pids": SPAWNED,
    }
    if args.summary:
        args.summary.write_text(json.dumps(outcome, indent=2))
    ok = not problems and code == 0
    print(f"{'PASS' if ok else 'FAIL'} (chaos): {sum(probes.checks.ran.values())} checks, {len(problems)} violations")
    return 0 if ok else 1


def _final_reseed(ctx: Any) -> list[str]:
    """Reseed once the seed lock is free: a seeder cut off by a fault leaves it for one lease."""
    from shared import availability
    from shared.availability.seed import SEED_LOCK_TTL_MS

    deadline = time.time() + SEED_LOCK_TTL_MS / 1000 + 5
    while time.time() < deadline:
        report = availability.seed_from_postgres(ctx)
        if report.ran:
            print(f"final reseed: {report.to_json()}", flush=True)
            return []
        time.sleep(0.5)
    return [f"the final reseed never got the seed lock within {SEED_LOCK_TTL_MS / 1000 + 5:.0f} s"]


def _context() -> Any:
    from shared.config import Settings
    from shared.context import AppContext

    return AppContext(Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
