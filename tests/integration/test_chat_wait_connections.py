"""However many requests wait, an instance keeps one pub/sub connection to Valkey and no more
(waiting requests hold no connection); each publish wakes all the waiters of its session."""

from __future__ import annotations

import threading
import time

import redis

from infra.embedded import EmbeddedValkey
from shared import availability
from shared.chat import longpoll
from shared.config import Settings
from shared.context import AppContext
from tests.support import apps
from tests.support.chat_support import Pair, active_session, receive, send

WAITERS = 40
MAX_WAITS_PER_CALLER = Settings().chat_max_waits_per_caller


def _connections(url: str) -> tuple[int, int]:
    """(connections other than this probe, pub/sub connections) on the server."""
    probe = redis.Redis.from_url(url, decode_responses=True)
    try:
        clients = [c for c in probe.client_list() if c["cmd"] != "client|list"]
        return len(clients), sum(1 for c in clients if int(c.get("sub", 0)) + int(c.get("psub", 0)) > 0)
    finally:
        probe.close()


def test_forty_waiting_requests_share_one_pubsub_connection_and_all_wake(
    isolated_ctx: AppContext, own_valkey: EmbeddedValkey
) -> None:
    ctx = apps.with_valkey(isolated_ctx, own_valkey.url)
    availability.ensure_seeded(ctx)
    # A caller holds at most MAX_WAITS_PER_CALLER waits: the forty come from ten customers.
    pairs = [active_session(ctx) for _ in range(WAITERS // MAX_WAITS_PER_CALLER)]
    afters = {p.session_id: receive("client", p.customer, p.session_id).json["next_after"] for p in pairs}
    results: dict[str, list[list[int]]] = {p.session_id: [] for p in pairs}
    lock = threading.Lock()

    def wait(pair: Pair) -> None:
        body = receive("client", pair.customer, pair.session_id, after=afters[pair.session_id], wait=20).json
        with lock:
            results[pair.session_id].append([m["id"] for m in body["messages"]])

    threads = [threading.Thread(target=wait, args=(pair,)) for pair in pairs for _ in range(MAX_WAITS_PER_CALLER)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # the token checks of the requests do not all overlap
    deadline = time.monotonic() + 10
    while longpoll.hub(ctx).waiting < WAITERS:
        assert time.monotonic() < deadline, "the readers did not all start waiting"
        time.sleep(0.05)

    total, pubsub = _connections(own_valkey.url)
    print(f"valkey connections with {WAITERS} waiting: {total} ({pubsub} pub/sub)")
    assert pubsub == 1
    assert total <= 6, f"{total} connections for {WAITERS} waiting requests"

    sent = {p.session_id: send("mitra", p.mitra, p.session_id, "to everyone waiting").json["id"] for p in pairs}
    for thread in threads:
        thread.join(timeout=15)
    assert results == {s: [[sent[s]]] * MAX_WAITS_PER_CALLER for s in sent}
