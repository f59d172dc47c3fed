"""A caller holds at most CHAT_MAX_WAITS_PER_CALLER waits on an instance: one more wait is 429
TOO_MANY_WAITS at once, never queued, while what there is to read is still answered and other
callers still wait (docs/chat.md, "Bounded waiting")."""

from __future__ import annotations

import threading
import time
from typing import Any

from shared import availability
from shared.chat import longpoll
from shared.context import AppContext
from tests.support.chat_support import active_session, receive, send


def test_a_wait_beyond_the_callers_cap_is_refused_at_once_but_reads_and_other_callers_are_not(
    isolated_ctx: AppContext,
) -> None:
    availability.ensure_seeded(isolated_ctx)
    pair = active_session(isolated_ctx)
    cap = isolated_ctx.settings.chat_max_waits_per_caller
    after = receive("client", pair.customer, pair.session_id).json["next_after"]
    assert after > 0  # the session's system messages
    held: list[Any] = []

    def wait(side: str) -> None:
        held.append(receive(side, pair.auth(side), pair.session_id, after=after, wait=20))

    waiters = [threading.Thread(target=wait, args=("client",)) for _ in range(cap)]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 10
    while longpoll.hub(isolated_ctx).waiting < cap:
        assert time.monotonic() < deadline, "the waits did not start"
        time.sleep(0.05)

    started = time.monotonic()
    refused = receive("client", pair.customer, pair.session_id, after=after, wait=20)
    assert refused.status_code == 429 and time.monotonic() - started < 5
    assert refused.json["error"]["code"] == "TOO_MANY_WAITS" and refused.headers["Retry-After"]
    # What there is to read is answered even at the cap, and so is a read without `wait`.
    assert receive("client", pair.customer, pair.session_id, after=0, wait=20).json["messages"]
    assert receive("client", pair.customer, pair.session_id, after=after).status_code == 200
    # The cap is per caller: the mitra of the same session still waits.
    mitra = threading.Thread(target=wait, args=("mitra",))
    mitra.start()
    while longpoll.hub(isolated_ctx).waiting < cap + 1:
        assert time.monotonic() < deadline, "the mitra's wait did not start"
        time.sleep(0.05)

    sent = send("mitra", pair.mitra, pair.session_id, "for every held wait").json
    for thread in [*waiters, mitra]:
        thread.join(timeout=15)
    assert [[m["id"] for m in r.json["messages"]] for r in held] == [[sent["id"]]] * (cap + 1)
    assert longpoll.hub(isolated_ctx).waiting == 0  # the count went back down
