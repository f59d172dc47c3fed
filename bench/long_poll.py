"""How many long polls one instance of the real receive function holds, what a wait costs, and
how fast one publish wakes them all.

The function (`chat_client_messages`) runs as Cloud Run starts it: `functions-framework
--target` (gunicorn, one worker; for a coroutine function uvicorn's worker) with the deploy
plan's THREADS and DB_POOL_SIZE, on an embedded Postgres and Valkey of its own. The load comes
from one asyncio client in this process (aiohttp, one connection per request).

- held: waits (`wait=25`) are opened in steps, CHAT_MAX_WAITS_PER_CALLER per customer, each
  customer on an active session of its own; at each step another customer's ordinary read
  (`wait=0`) is timed, median of READS. The figure is the largest step where every wait was
  still held and that read stayed under 100 ms (goal: 1,000, Cloud Run's cap per instance).
- memory per wait: the worker's RSS with the most waits held, minus its RSS before them, per
  wait; beside the same for a bare async function (bench/_functions/bare_wait.py) in the same
  run (goal: at most 1.5x).
- wake: 1,000 waits of one customer on one session (the cap raised for that server only), then
  one send (one publish): the time until the last of them has its answer.

    .venv/bin/python -m bench.long_poll [--steps 100,250,500,1000] [--source DIR --threads N]

`--source` runs the function of another checkout (the threaded design, for the side-by-side
in docs/decisions.md); `--threads` sets its THREADS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.common import own_servers
from shared.context import AppContext

ROOT = Path(__file__).resolve().parent.parent
STEPS = (100, 250, 500, 1000)
READS = 20
WAIT_SECONDS = 25
READ_GOAL_MS = 100.0
READ_TIMEOUT_SECONDS = 5.0
IDLE_CPU_PERCENT = 10.0  # the worker is done taking in new waits (their token checks and reads)
PATH = "/api/client/chat-sessions/{}/messages"


def _sessions(ctx: AppContext, n: int) -> list[dict[str, Any]]:
    """n active sessions, each of a new customer and a new mitra, with both parties' tokens."""
    from bench.common import active_sessions

    return [{"session": a.session, "headers": a.customer, "mitra": a.mitra_principal} for a in active_sessions(ctx, n)]


@contextmanager
def _server(
    ctx: AppContext, target: str, source: Path, env: dict[str, str], root: Path = ROOT
) -> Iterator[tuple[str, psutil.Process]]:
    """The function under functions-framework's production server; (url, its worker process).

    `root` goes on PYTHONPATH: a deployed bundle carries shared/ beside main.py.
    """
    from infra.embedded import free_port

    port = free_port()
    full_env = {
        **os.environ,
        "DATABASE_URL": ctx.settings.database_url or "",
        "VALKEY_URL": ctx.settings.valkey_url or "",
        "VALKEY_PREFIX": ctx.settings.valkey_prefix,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(root),
        **env,
    }
    argv = [str(Path(sys.executable).with_name("functions-framework")), f"--target={target}", f"--source={source}"]
    proc = subprocess.Popen([*argv, "--host=127.0.0.1", f"--port={port}"], env=full_env, cwd=source.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        import requests

        for _ in range(600):
            try:
                requests.get(f"{url}/", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, "the function server exited"
                time.sleep(0.1)
        (worker,) = psutil.Process(proc.pid).children()
        yield url, worker
    finally:
        workers = psutil.Process(proc.pid).children() if proc.poll() is None else []
        proc.kill()  # a bare function would otherwise finish its sleeps first
        proc.wait()
        for child in workers:
            child.kill()


def _plan_env(threads: int | None) -> dict[str, str]:
    from infra import deploy, gateway
    from shared import manifest

    fn = manifest.load().by_entry_point("chat_client_messages")
    env = deploy.function_env(fn, deploy.load_config(gateway.LOCAL_PROJECT, gateway.LOCAL_REGION))
    sizing = {k: v for k, v in env.items() if k in ("THREADS", "DB_POOL_SIZE")}
    if threads is not None:
        sizing["THREADS"] = str(threads)
    return sizing


def _rss(worker: psutil.Process) -> int:
    return int(worker.memory_info().rss)


async def _get(http: aiohttp.ClientSession, url: str, headers: dict[str, str], params: dict[str, Any]) -> int:
    async with http.get(url, headers=headers, params=params) as resp:
        await resp.read()
        return resp.status


async def _read_ms(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    """Median of READS ordinary reads (a read stuck behind the waits counts as READ_TIMEOUT_SECONDS)."""
    times = []
    for _ in range(READS):
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(_get(http, url, headers, {"wait": 0}), READ_TIMEOUT_SECONDS)
            assert status == 200, status
            times.append((time.perf_counter() - started) * 1000)
        except TimeoutError:
            times.append(READ_TIMEOUT_SECONDS * 1000)
            if len(times) >= 3 and statistics.median(times) >= READ_TIMEOUT_SECONDS * 1000:
                break  # queued behind the waits: more samples would only say so again
    return statistics.median(times)


async def _settle(tasks: list[asyncio.Task[int]], worker: psutil.Process) -> int:
    """Wait until the new waits are in (the worker idle again); how many already answered (not held)."""
    await asyncio.sleep(1.0)
    worker.cpu_percent()
    for _ in range(60):
        await asyncio.sleep(0.5)
        if worker.cpu_percent() < IDLE_CPU_PERCENT:
            break
    return sum(1 for t in tasks if t.done())


async def _held(
    base: str,
    worker: psutil.Process,
    callers: list[dict[str, Any]],
    reader: dict[str, Any],
    per: int,
    steps: tuple[int, ...],
    pool: int,
) -> dict[str, Any]:
    """The steps: read latency and answered-early count at each, and RSS before and at the top."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=WAIT_SECONDS + 30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        read_url = base + PATH.format(reader["session"])
        await _read_ms(http, read_url, reader["headers"])  # warm: imports, listener
        # Fill what an instance holds once whatever its load (the pool's threads and Postgres
        # connections, DB_POOL_SIZE each): reads one at a time use one of each, and the rest
        # would be counted against the waits.
        await asyncio.gather(*(_get(http, read_url, reader["headers"], {"wait": 0}) for _ in range(4 * pool)))
        await _get(http, read_url, reader["headers"], {"wait": 1})
        await asyncio.sleep(1)
        rss_before = _rss(worker)
        tasks: list[asyncio.Task[int]] = []
        rows = []
        for step in steps:
            while len(tasks) < step:
                caller = callers[len(tasks) // per]
                url = base + PATH.format(caller["session"])
                tasks.append(asyncio.create_task(_get(http, url, caller["headers"], {"wait": WAIT_SECONDS})))
            early = await _settle(tasks, worker)
            read = await _read_ms(http, read_url, reader["headers"])
            rows.append({"waits": step, "read_ms": read, "answered_early": early, "rss": _rss(worker)})
        rss_top = _rss(worker)
        for task in tasks:
            task.cancel()
    held = [r["waits"] for r in rows if r["answered_early"] == 0 and r["read_ms"] < READ_GOAL_MS]
    return {
        "steps": rows,
        "held": max(held, default=0),
        "kb_per_wait": (rss_top - rss_before) / 1024 / len(tasks),
    }


async def _wake(base: str, worker: psutil.Process, ctx: AppContext, pair: dict[str, Any], n: int) -> dict[str, Any]:
    """n waits of one customer on one session; seconds from one send to the last answer."""
    from shared.chat import service

    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=WAIT_SECONDS + 30)
    url = base + PATH.format(pair["session"])
    done_at: list[float] = []

    async def one() -> int:
        status = await _get(http, url, pair["headers"], {"wait": WAIT_SECONDS})
        done_at.append(time.perf_counter())
        return status

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await _get(http, url, pair["headers"], {"wait": 0})
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        early = await _settle(tasks, worker)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        await loop.run_in_executor(
            None, service.send, ctx, pair["mitra"], pair["session"], str(uuid.uuid4()), "wakes everyone"
        )
        statuses = await asyncio.gather(*tasks)
    return {
        "waits": n,
        "answered_early": early,
        "ok": sum(1 for s in statuses if s == 200),
        "wake_s": max(done_at) - started,
    }


def measure(steps: tuple[int, ...] = STEPS, source: Path | None = None, threads: int | None = None) -> dict[str, Any]:
    """Every figure of this benchmark, in one run (see the module docstring)."""
    os.environ.setdefault("AUTH_JWT_SECRET", "bench-secret-" + uuid.uuid4().hex * 2)
    from shared.config import Settings

    per = Settings.from_env().chat_max_waits_per_caller
    function = (source or ROOT) / "functions" / "chat" / "main.py"
    bare = ROOT / "bench" / "_functions" / "bare_wait.py"
    top = max(steps)
    with own_servers("bench-longpoll-") as ctx:
        with ctx.db.transaction() as tx:  # the wake phase sends one message per run, the reads none
            tx.execute("UPDATE app_config SET value = '100000' WHERE key = 'chat_max_messages_per_minute'")
            tx.commit()
        pairs = _sessions(ctx, -(-top // per) + 2)
        callers, reader, single = pairs[:-2], pairs[-2], pairs[-1]
        env = _plan_env(threads)
        pool = int(env.get("DB_POOL_SIZE", Settings.from_env().db_pool_size))
        with _server(ctx, "chat_client_messages", function, env, source or ROOT) as (base, worker):
            real = asyncio.run(_held(base, worker, callers, reader, per, steps, pool))
        with _server(ctx, "bare_wait", bare, env) as (base, worker):
            baseline = asyncio.run(_held(base, worker, callers, reader, per, (top,), pool))
        wake: dict[str, Any] | None = None
        if source is None:
            raised = {**env, "CHAT_MAX_WAITS_PER_CALLER": str(top)}
            with _server(ctx, "chat_client_messages", function, raised) as (base, worker):
                wake = asyncio.run(_wake(base, worker, ctx, single, top))
    return {
        "env": env,
        "steps": real["steps"],
        "held": real["held"],
        "kb_per_wait": real["kb_per_wait"],
        "bare_kb_per_wait": baseline["kb_per_wait"],
        "memory_ratio": real["kb_per_wait"] / baseline["kb_per_wait"] if baseline["kb_per_wait"] > 0 else None,
        "wake": wake,
    }


def report(r: dict[str, Any]) -> str:
    lines = [f"chat_client_messages on one instance ({', '.join(f'{k}={v}' for k, v in r['env'].items())})"]
    lines.append("| waits held | ordinary read (median of 20) | waits answered early | worker RSS |")
    lines.append("|---|---|---|---|")
    for row in r["steps"]:
        lines.append(
            f"| {row['waits']} | {row['read_ms']:.1f} ms | {row['answered_early']} | {row['rss'] / 2**20:.0f} MiB |"
        )
    ratio = f"{r['memory_ratio']:.2f}x" if r["memory_ratio"] else "n/a"
    lines.append(f"held with a read under {READ_GOAL_MS:.0f} ms: {r['held']} (goal 1,000)")
    lines.append(
        f"memory per wait: {r['kb_per_wait']:.1f} KB vs bare async function {r['bare_kb_per_wait']:.1f} KB"
        f" = {ratio} (goal <= 1.5x)"
    )
    if r["wake"]:
        w = r["wake"]
        lines.append(
            f"one publish woke {w['ok']} of {w['waits']} waits in {w['wake_s']:.2f} s"
            f" ({w['answered_early']} answered before it)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", default=",".join(str(s) for s in STEPS))
    parser.add_argument("--source", type=Path, help="the checkout whose function to run (default: this one)")
    parser.add_argument("--threads", type=int, help="THREADS for the server (default: the deploy plan's)")
    args = parser.parse_args(argv)
    steps = tuple(int(s) for s in args.steps.split(","))
    print(report(measure(steps, args.source, args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
