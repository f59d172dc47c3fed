"""Request time of the calls that push, with a fast, a slow (3 s) and a failing (503) FCM.

Pushes leave the request through a bounded in-process queue (shared/notify.py), so a slow or
failing FCM should leave the sender's request time unchanged. This runs the real chat-send and
accept entry points against embedded Postgres and Valkey, with the real firebase-admin client
sending to the loopback FCM stand-in, and prints the median request time per FCM behaviour
side by side. The receiving users each have an iOS and an Android device.

    .venv/bin/python -m bench.push_latency [repeat]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from bench.common import own_servers
from shared import context, notify
from shared.context import AppContext
from tests.support.chat_support import active_session, send
from tests.support.fcm_standin import FcmStandIn, fcm_installed
from tests.support.pairing_support import api, customer, online_mitras

MODES: dict[str, Callable[[FcmStandIn], None]] = {
    "fast FCM": lambda s: None,
    "FCM answering in 3 s": lambda s: setattr(s, "delay", 3.0),
    "FCM answering 503": lambda s: setattr(s, "fail_all", 503),
}


def _register(ctx: AppContext, user_type: str, user_id: str) -> None:
    with ctx.db.transaction() as tx:
        for platform in ("ios", "android"):
            tx.execute(
                "INSERT INTO devices (user_type, user_id, fcm_token, platform) VALUES (:t, CAST(:u AS uuid), :tok, :p)",
                t=user_type,
                u=user_id,
                tok=f"{'ios-' if platform == 'ios' else ''}live-{user_id}",
                p=platform,
            )
        tx.commit()


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    response = fn()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code in (200, 201), response.status_code
    return elapsed


def _accept_once(ctx: AppContext) -> float:
    [(_, mitra_auth)] = online_mitras(ctx, 1)
    customer_id, customer_auth = customer(ctx)
    _register(ctx, "customer", customer_id)
    session = api("request", customer_auth).json
    return _timed(lambda: api("accept", mitra_auth, session["id"]))


def main(argv: list[str]) -> int:
    repeat = int(argv[0]) if argv else 15
    os.environ.setdefault("AUTH_JWT_SECRET", "bench-secret-" + uuid.uuid4().hex * 2)
    with own_servers("bench-push-") as base, ExitStack() as stack:
        os.environ.update(DATABASE_URL=base.settings.database_url or "", VALKEY_URL=base.settings.valkey_url or "")
        with base.db.transaction() as tx:  # the bench sends more than a person types
            tx.execute("UPDATE app_config SET value = '100000' WHERE key = 'chat_max_messages_per_minute'")
            tx.commit()
        setups = []
        for name, configure in MODES.items():
            ctx = AppContext(base.settings)
            context.install(ctx)
            standin = stack.enter_context(fcm_installed(ctx))
            standin.retry_after = "0"
            pair = active_session(ctx)
            _register(ctx, "mitra", pair.mitra_id)
            _accept_once(ctx)  # warm-up: apps built, firebase-admin's session open
            configure(standin)
            setups.append((name, ctx, standin, pair))
        samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in MODES}
        for i in range(repeat):  # interleaved, so the machine's load falls on every mode alike
            for name, ctx, _, pair in setups:
                context.install(ctx)
                samples[name][0].append(_accept_once(ctx))
                samples[name][1].append(_timed(lambda: send("client", pair.customer, pair.session_id, f"m{i}")))  # noqa: B023
        for _, ctx, _, _ in setups:
            notify.drain(ctx, timeout=60)
    base_accept, base_send = (statistics.median(v) for v in samples["fast FCM"])
    print(f"median request time over {repeat} calls each (ms), interleaved; ratio to the fast FCM in brackets")
    print(f"{'FCM':24} {'accept':>16} {'chat send':>16} {'FCM requests':>13}")
    for name, _, standin, _ in setups:
        accept_ms, send_ms = (statistics.median(v) for v in samples[name])
        print(
            f"{name:24} {accept_ms:8.1f} ({accept_ms / base_accept:4.2f}x)"
            f" {send_ms:8.1f} ({send_ms / base_send:4.2f}x) {len(standin.requests):13d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
