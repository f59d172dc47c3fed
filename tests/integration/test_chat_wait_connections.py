"""However many requests wait, an instance keeps one pub/sub connection to Valkey and no more
(waiting requests hold no connection); one publish wakes all of them."""

from __future__ import annotations

import threading
import time

import redis

from infra.embedded import EmbeddedValkey
from shared import availability
from shared.chat import wake
from shared.context import AppContext
from tests import apps
from tests.chat_support import active_session, receive, send

WAITERS = 40


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
    pair = active_session(ctx)
    after = receive("client", pair.customer, pair.session_id).json["next_after"]
    results: list[list[int]] = []
    lock = threading.Lock()

    def wait() -> None:
        body = receive("client", pair.customer, pair.session_id, after=after, wait=20).json
        with lock:
            results.append([m["id"] for m in body["messages"]])

    threads = [threading.Thread(target=wait) for _ in range(WAITERS)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)  # the token checks of the requests do not all overlap
    deadline = time.monotonic() + 10
    while wake.hub(ctx).waiting < WAITERS:
        assert time.monotonic() < deadline, "the readers did not all start waiting"
        time.sleep(0.05)

    total, pubsub = _connections(own_valkey.url)
    print(f"valkey connections with {WAITERS} waiting: {total} ({pubsub} pub/sub)")
    assert pubsub == 1
    assert total <= 6, f"{total} connections for {WAITERS} waiting requests"

    sent = send("mitra", pair.mitra, pair.session_id, "to everyone waiting").json
    for thread in threads:
        thread.join(timeout=15)
    assert results == [[sent["id"]]] * WAITERS
