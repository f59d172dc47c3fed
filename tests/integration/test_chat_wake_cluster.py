"""The wake-up also crosses a Valkey cluster (VALKEY_CLUSTER=1, Memorystore's default mode):
a publish through one node reaches the listener subscribed through whichever node owns the channel."""

from __future__ import annotations

import threading
import time

from shared.chat import wake
from shared.context import AppContext
from shared.sessions import effects


def test_a_publish_wakes_a_waiter_on_the_three_shard_cluster(cluster_ctx: AppContext) -> None:
    hub = wake.hub(cluster_ctx)
    assert hub.ready()
    woken = threading.Event()
    with hub.listen("session-a") as event, hub.listen("session-b") as other:
        waiter = threading.Thread(target=lambda: woken.set() if event.wait(10) else None)
        waiter.start()
        started = time.monotonic()
        effects.wake_readers(cluster_ctx, "session-a")
        waiter.join(timeout=15)
        assert woken.is_set() and time.monotonic() - started < 5
        assert not other.is_set()  # only the waiters of the published session wake
