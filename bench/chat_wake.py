"""How fast a long-polling chat reader on one process gets a message sent through another.

Two separately started server processes (the chat group behind the local gateway, each with
its own pools and pub/sub listener) share one Postgres and one Valkey (embedded unless
DATABASE_URL / VALKEY_URL are set). Each round: the reader waits (`wait=20`) on one process,
the other party sends through the other process; we time from the start of the send to the
reader's answer. Directions alternate. Run: `.venv/bin/python -m bench.chat_wake`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROUNDS = int(os.environ.get("BENCH_CHAT_ROUNDS", "60"))
REPO = Path(__file__).resolve().parent.parent

_SERVE = """
import logging, sys
from werkzeug.serving import run_simple
from infra import gateway
from shared import context, manifest
context.init()
logging.getLogger("werkzeug").setLevel(logging.WARNING)
app = gateway.Gateway([fn for fn in manifest.load().functions if fn.group == "chat" or fn.name == "healthz"])
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


def _active_session(ctx: Any) -> tuple[str, dict[str, str], dict[str, str]]:
    """(session id, customer Authorization, mitra Authorization) of a new active session."""
    from bench.common import active_sessions

    [one] = active_sessions(ctx, 1)
    return one.session, one.customer, one.mitra


def main() -> int:
    import requests

    from infra import embedded, migrate

    with embedded.services() as env:
        os.environ.update(env)
        os.environ.setdefault("AUTH_JWT_SECRET", "bench-secret-" + uuid.uuid4().hex * 2)
        os.environ.setdefault("VALKEY_PREFIX", f"bench{uuid.uuid4().hex[:6]}:")
        from shared import context

        ctx = context.init()
        migrate.migrate(ctx.db)
        with ctx.db.transaction() as tx:  # the bench sends more than a person types
            tx.execute("UPDATE app_config SET value = '100000' WHERE key = 'chat_max_messages_per_minute'")
            tx.commit()
        session, customer, mitra = _active_session(ctx)
        servers = [_start_server(), _start_server()]
        sides = {"client": customer, "mitra": mitra}
        samples: list[float] = []
        after = 0
        try:
            for i in range(ROUNDS):
                reader, writer = ("client", "mitra") if i % 2 == 0 else ("mitra", "client")
                reader_url, writer_url = servers[i % 2][1], servers[(i + 1) % 2][1]
                got: dict[str, Any] = {}

                def wait(
                    r: str = reader, base: str = reader_url, since: int = after, out: dict[str, Any] = got
                ) -> None:
                    resp = requests.get(
                        f"{base}/api/{r}/chat-sessions/{session}/messages",
                        params={"after": since, "wait": 20},
                        headers=sides[r],
                        timeout=30,
                    )
                    out["at"], out["body"] = time.monotonic(), resp.json()

                thread = threading.Thread(target=wait)
                thread.start()
                time.sleep(0.3)
                started = time.monotonic()
                sent = requests.post(
                    f"{writer_url}/api/{writer}/chat-sessions/{session}/messages",
                    json={"client_message_id": str(uuid.uuid4()), "body": f"round {i}"},
                    headers=sides[writer],
                    timeout=10,
                ).json()
                thread.join(timeout=30)
                assert [m["id"] for m in got["body"]["messages"]] == [sent["id"]], got
                samples.append((got["at"] - started) * 1000)
                after = sent["id"]
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(timeout=10)
            ctx.close()
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"send on one process -> waiting reader on the other answered: n={len(samples)}")
    print(f"  median {statistics.median(samples):6.1f} ms   p95 {p95:6.1f} ms   max {samples[-1]:6.1f} ms")
    print("  (includes the send itself: auth, the locked insert, the publish and the push)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
