"""The wake-up also crosses a Valkey cluster (VALKEY_CLUSTER=1, Memorystore's default mode):
a publish through one node reaches the listener subscribed through whichever node owns the channel."""

from __future__ import annotations

import asyncio
import time

from infra import asgi_bridge
from shared.chat import longpoll
from shared.context import AppContext
from shared.sessions import effects


async def _published_wakes_only_its_session(ctx: AppContext) -> tuple[bool, float, bool]:
    hub = longpoll.hub(ctx)
    assert await hub.ready()
    with hub.listen("session-a") as event, hub.listen("session-b") as other:
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, effects.wake_readers, ctx, "session-a")
        try:
            await asyncio.wait_for(event.wait(), 10)
        except TimeoutError:
            return False, time.monotonic() - started, other.is_set()
        return True, time.monotonic() - started, other.is_set()


def test_a_publish_wakes_a_waiter_on_the_three_shard_cluster(cluster_ctx: AppContext) -> None:
    woken, seconds, other_woken = asgi_bridge.run(_published_wakes_only_its_session(cluster_ctx), timeout=15)
    assert woken and seconds < 5
    assert not other_woken  # only the waiters of the published session wake
