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

REPO = Path(__file__).resolve().parent.parent

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


@contextmanager
def server(
    ctx: AppContext, groups: tuple[str, ...] = ("chat",), extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve `groups` on a free port in a new Python process on ctx's database, Valkey and key prefix."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": ctx.settings.database_url or "",
        "VALKEY_URL": ctx.settings.valkey_url or "",
        "VALKEY_PREFIX": ctx.settings.valkey_prefix,
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(port), ",".join(groups)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code in (200, 503):
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, "server process exited"
            assert time.monotonic() < deadline, "server process did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
