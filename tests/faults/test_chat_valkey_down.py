"""Chat with Valkey really stopped: sends still work, receive answers at once from Postgres
(plain polling), a reader that was waiting when Valkey went away is answered instead of
hanging until its `wait` runs out, and waits work again once Valkey is back."""

from __future__ import annotations

import threading
import time
from typing import Any

from infra import asgi_bridge
from infra.embedded import EmbeddedValkey
from shared import availability
from shared.chat import longpoll
from shared.context import AppContext
from tests.support import apps
from tests.support.chat_support import active_session, receive, send


def test_send_and_receive_work_without_valkey_and_waits_resume_after_it(
    isolated_ctx: AppContext, own_valkey: EmbeddedValkey
) -> None:
    ctx = apps.with_valkey(isolated_ctx, own_valkey.url)
    availability.ensure_seeded(ctx)
    pair = active_session(ctx)
    after = receive("client", pair.customer, pair.session_id).json["next_after"]
    assert asgi_bridge.run(longpoll.hub(ctx).ready())

    answered: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        resp = receive("client", pair.customer, pair.session_id, after=after, wait=20)
        answered["seconds"], answered["body"] = time.monotonic() - started, resp.json

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    own_valkey.stop()
    waiter.join(timeout=25)
    assert answered["body"]["messages"] == [] and answered["seconds"] < 10  # not held for the full 20 s

    sent = send("mitra", pair.mitra, pair.session_id, "sent while Valkey is down")
    assert sent.status_code == 201, sent.json
    started = time.monotonic()
    got = receive("client", pair.customer, pair.session_id, after=after, wait=20)
    assert [m["id"] for m in got.json["messages"]] == [sent.json["id"]]
    nothing = receive("client", pair.customer, pair.session_id, after=sent.json["id"], wait=20)
    assert nothing.status_code == 200 and nothing.json["messages"] == []
    assert time.monotonic() - started < 10  # plain polling: answered at once, not after `wait`

    own_valkey.start()
    deadline = time.monotonic() + 15
    while not longpoll.hub(ctx).connected:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        time.sleep(0.1)

    def wait_again() -> None:
        resp = receive("client", pair.customer, pair.session_id, after=sent.json["id"], wait=20)
        answered["again"] = resp.json

    waiter = threading.Thread(target=wait_again)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # waiting again, now that the listener is back
    second = send("mitra", pair.mitra, pair.session_id, "Valkey is back").json
    waiter.join(timeout=25)
    assert [m["id"] for m in answered["again"]["messages"]] == [second["id"]]
