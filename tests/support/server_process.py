"""Separately started server processes: the local gateway of some groups in a subprocess of its own.

Two of them are two "instances" of a function: separate interpreters, pools, pub/sub listeners,
sharing only Postgres and Valkey, as two Cloud Run instances do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from infra.embedded import free_port
from shared.context import AppContext

REPO = Path(__file__).resolve().parents[2]

_SERVE = """
import sys
from werkzeug.serving import run_simple
from infra import deploy, gateway
from shared import context
context.init()
groups = set(sys.argv[2].split(","))
served = [fn for fn in gateway.served_functions(False) if fn.group in groups or fn.name == "healthz"]
config = deploy.load_config(gateway.LOCAL_PROJECT, gateway.LOCAL_REGION)
app = gateway.Gateway(deploy.plan(served, config, {}, local=True))
print("ready", flush=True)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
"""


def _env(ctx: AppContext, **extra: str) -> dict[str, str]:
    """This process's environment pointed at ctx's database, Valkey and key prefix."""
    return {
        **os.environ,
        "DATABASE_URL": ctx.settings.database_url or "",
        "VALKEY_URL": ctx.settings.valkey_url or "",
        "VALKEY_PREFIX": ctx.settings.valkey_prefix,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


@contextmanager
def _running(
    proc: subprocess.Popen[bytes], probe: str, up: tuple[int, ...] | None, what: str, stop_seconds: float
) -> Iterator[None]:
    """Wait until `probe` answers (with a status in `up`, or any when None), hold the block, then
    stop `proc`: SIGTERM, SIGKILL after `stop_seconds`."""
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status = requests.get(probe, timeout=2).status_code
                if up is None or status in up:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, f"{what} exited"
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def server(
    ctx: AppContext, groups: tuple[str, ...] = ("chat",), extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve `groups` on a free port in a new Python process on ctx's database, Valkey and key prefix."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(port), ",".join(groups)],
        cwd=REPO,
        env=_env(ctx, **(extra_env or {})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    with _running(proc, f"{url}/healthz", (200, 503), "server process", 10):
        yield url


_function_servers: dict[str, subprocess.Popen[bytes]] = {}


def function_process(url: str) -> subprocess.Popen[bytes]:
    """The process of a running `function_server` (to signal it)."""
    return _function_servers[url]


@contextmanager
def function_server(ctx: AppContext, entry_point: str) -> Iterator[str]:
    """One function under functions-framework's production server, as Cloud Run starts it.

    `functions-framework --target` picks gunicorn (threads: the plan's THREADS) for a plain
    function and gunicorn with uvicorn's worker for a `functions_framework.aio` one; the
    sizing (THREADS, DB_POOL_SIZE) is the deploy plan's for that function; the servers are ctx's.
    """
    from infra import deploy, gateway
    from shared import manifest

    fn = manifest.load().by_entry_point(entry_point)
    config = deploy.load_config(gateway.LOCAL_PROJECT, gateway.LOCAL_REGION)
    port = free_port()
    sizing = {k: v for k, v in deploy.function_env(fn, config).items() if k in ("THREADS", "DB_POOL_SIZE")}
    env = _env(ctx, **sizing, PYTHONPATH=str(REPO))  # a deployed bundle carries shared/ beside main.py
    argv = [str(Path(sys.executable).with_name("functions-framework")), f"--target={entry_point}"]
    argv += [f"--source={gateway.source_of(fn)}", "--host=127.0.0.1", f"--port={port}"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _function_servers[url] = proc
    try:
        with _running(proc, f"{url}/", None, "function server", 15):
            yield url
    finally:
        del _function_servers[url]
