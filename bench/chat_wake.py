"""How fast a long-polling chat reader on one process gets a message sent through another.

Two separately started server processes (each serving the functions behind the local gateway,
with its own pools and pub/sub listener) share one Postgres and one Valkey. Each round: the
reader waits (`wait=20`) on one process, the other party sends through the other process; we
time from the start of the send to the reader's answer. Directions alternate.

- `python -m bench.chat_wake`: the chat group alone under werkzeug's threaded server, on
  embedded servers (or DATABASE_URL / VALKEY_URL), nothing else running.
- `python -m bench.chat_wake --under-load [--mitras 1000 --customers 100 --seconds 60]`: the
  two processes `make load` starts (bench.load.serve under gunicorn gthread, the load test's
  settings, seeding and sweeps), measured twice in one run: first idle, then while locust
  drives `make load`'s mix of users through the same two processes. Both figures come from
  the same servers minutes apart, so their ratio is what the load costs a wake-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROUNDS = int(os.environ.get("BENCH_CHAT_ROUNDS", "60"))
REPO = Path(__file__).resolve().parent.parent
SEND_MS: list[float] = []

_SERVE = """
import logging, sys
from werkzeug.serving import run_simple
from infra import deploy, gateway
from shared import context
context.init()
logging.getLogger("werkzeug").setLevel(logging.WARNING)
fns = [fn for fn in gateway.served_functions(False) if fn.group == "chat" or fn.name == "healthz"]
config = deploy.load_config(gateway.LOCAL_PROJECT, gateway.LOCAL_REGION)
app = gateway.Gateway(deploy.plan(fns, config, {}, local=True))
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
"""


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    import requests

    from infra.embedded import free_port

    port = free_port()
    proc = subprocess.Popen(  # our own interpreter and code
        [sys.executable, "-c", _SERVE, str(port)], cwd=REPO, env={**os.environ, "LOG_LEVEL": "WARNING"}
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(f"{url}/healthz", timeout=2)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _allow_fast_sends(ctx: Any) -> None:
    with ctx.db.transaction() as tx:  # the bench sends more than a person types
        tx.execute("UPDATE app_config SET value = '100000' WHERE key = 'chat_max_messages_per_minute'")
        tx.commit()


def rounds(ctx: Any, urls: list[str], n: int, stop: threading.Event | None = None) -> list[float]:
    """Wake-up times (ms, send start → reader answered) of up to `n` rounds on a new session,
    alternating which of the two `urls` reads; stops early when `stop` is set. The send's own
    time (send start → its answer) of each round is appended to `SEND_MS` to tell the two
    parts apart."""
    import requests

    from bench.common import active_sessions

    [one] = active_sessions(ctx, 1)
    sides = {"client": one.customer, "mitra": one.mitra}
    samples: list[float] = []
    after = 0
    with requests.Session() as http:
        for i in range(n):
            if stop is not None and stop.is_set():
                break
            reader, writer = ("client", "mitra") if i % 2 == 0 else ("mitra", "client")
            reader_url, writer_url = urls[i % 2], urls[(i + 1) % 2]
            got: dict[str, Any] = {}

            def wait(r: str = reader, base: str = reader_url, since: int = after, out: dict[str, Any] = got) -> None:
                resp = requests.get(
                    f"{base}/api/{r}/chat-sessions/{one.session}/messages",
                    params={"after": since, "wait": 20},
                    headers=sides[r],
                    timeout=30,
                )
                out["at"], out["body"] = time.monotonic(), resp.json()

            thread = threading.Thread(target=wait)
            thread.start()
            time.sleep(0.3)
            started = time.monotonic()
            sent = http.post(
                f"{writer_url}/api/{writer}/chat-sessions/{one.session}/messages",
                json={"client_message_id": str(uuid.uuid4()), "body": f"round {i}"},
                headers=sides[writer],
                timeout=10,
            ).json()
            SEND_MS.append((time.monotonic() - started) * 1000)
            thread.join(timeout=30)
            assert [m["id"] for m in got["body"]["messages"]] == [sent["id"]], got
            samples.append((got["at"] - started) * 1000)
            after = sent["id"]
    return samples


def _summary(label: str, samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    out = {
        "n": len(ordered),
        "median_ms": statistics.median(ordered),
        "p95_ms": ordered[max(0, int(len(ordered) * 0.95) - 1)],
        "max_ms": ordered[-1],
    }
    print(
        f"  {label:<22} n={out['n']:<4.0f} median {out['median_ms']:6.1f} ms   p95 {out['p95_ms']:6.1f} ms"
        f"   max {out['max_ms']:6.1f} ms",
        flush=True,
    )
    return out


def standalone(n: int = ROUNDS) -> dict[str, float]:
    from infra import embedded, migrate

    with embedded.services() as env:
        os.environ.update(env)
        os.environ.setdefault("AUTH_JWT_SECRET", "bench-secret-" + uuid.uuid4().hex * 2)
        os.environ.setdefault("VALKEY_PREFIX", f"bench{uuid.uuid4().hex[:6]}:")
        from shared import context

        ctx = context.init()
        migrate.migrate(ctx.db)
        _allow_fast_sends(ctx)
        servers = [_start_server(), _start_server()]
        try:
            samples = rounds(ctx, [url for _, url in servers], n)
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(timeout=10)
            ctx.close()
    print("send on one process -> waiting reader on the other answered:")
    result = _summary("chat group alone", samples)
    _summary("  of which the send", SEND_MS)
    print("  (includes the send itself: auth, the locked insert, the publish and the push)")
    return result


def under_load(mitras: int, customers: int, seconds: int, n: int = ROUNDS) -> dict[str, Any]:
    """Idle rounds, then rounds while `make load`'s mix runs, on the load test's two processes."""
    from bench.load import runner
    from infra import migrate
    from infra.embedded import EmbeddedPostgres, EmbeddedValkey

    work = Path(tempfile.mkdtemp(prefix="bench-chat-wake-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        pg = EmbeddedPostgres(work / "postgres", extra_settings={"max_connections": "400"}).start()
        stack.callback(pg.stop)
        vk = EmbeddedValkey(work / "valkey").start()
        stack.callback(vk.stop)
        env = runner.environment(pg.url, vk.url)
        os.environ.update(env)
        ctx = runner._context()
        stack.callback(ctx.close)
        migrate.migrate(ctx.db)
        _allow_fast_sends(ctx)
        plan = runner.seed(ctx, mitras, customers)
        servers = runner.start_servers(stack, env, [work / f"server-{s}.log" for s in "ab"])
        urls = [srv.url for srv in servers]
        idle = rounds(ctx, urls, n)
        idle_send = SEND_MS[:]
        SEND_MS.clear()
        plan.update(hosts=urls, staff=4, pace=runner.PACE, business_out=str(work / "business.json"))
        plan_path = work / "plan.json"
        plan_path.write_text(json.dumps(plan))
        sweeps = runner.Sweeps(urls)
        sweeps.start()
        done = threading.Event()
        load_before = os.getloadavg()[0]

        def drive() -> None:
            try:
                runner.run_locust(plan_path, mitras + customers + 4, seconds, work)
            finally:
                done.set()

        cpu_before, children_before, started = _cpu_by_kind(os.getpid()), _children_cpu(), time.monotonic()
        locust = threading.Thread(target=drive, daemon=True)
        locust.start()
        time.sleep(min(15.0, seconds / 4))  # past the ramp-up: every user spawned
        loaded = rounds(ctx, urls, n * 10, stop=done)  # as many rounds as the run lasts
        locust.join(timeout=seconds + 200)
        cpu = {kind: spent - cpu_before.get(kind, 0.0) for kind, spent in _cpu_by_kind(os.getpid()).items()}
        cpu["locust"] = _children_cpu() - children_before  # its process has ended: reaped, so counted here
        elapsed = time.monotonic() - started
        sweeps.stop()
        routes, _ = runner.read_stats(work)
    print(f"send on one process -> waiting reader on the other answered ({mitras} mitras, {customers} customers):")
    result = {"idle": _summary("idle", idle), "idle_send": _summary("  of which the send", idle_send)}
    result["loaded"] = _summary("under make load's mix", loaded)
    result["loaded_send"] = _summary("  of which the send", SEND_MS)
    print(f"  load: {sum(r['requests'] for r in routes)} requests, {sum(r['rps'] for r in routes):.0f} req/s")
    print(f"  load average (1 min) at start / end: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    shares = ", ".join(f"{kind} {spent / elapsed:.2f}" for kind, spent in sorted(cpu.items(), key=lambda kv: -kv[1]))
    print(f"  cores used over the {elapsed:.0f} s of load ({os.cpu_count()} on the machine): {shares}")
    ratio = result["loaded"]["p95_ms"] / result["idle"]["p95_ms"]
    print(f"  p95 under load / idle = {ratio:.2f}x")
    return result


def _cpu_by_kind(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of the processes now running under `root`, by kind: the
    server processes, Postgres, Valkey, this driver (Linux /proc; a process that has already
    ended is missing, so this is a floor)."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)], stats[int(entry)] = int(fields[1]), fields
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += [child for child, parent in parents.items() if parent == pid]
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        kind = next(
            (k for k in ("gunicorn", "postgres", "valkey") if k in command), "driver" if pid == root else "other"
        )
        fields = stats.get(pid)
        if fields is not None:
            out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--under-load", action="store_true")
    parser.add_argument("--mitras", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    if args.under_load:
        under_load(args.mitras, args.customers, args.seconds, args.rounds)
    else:
        standalone(args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
