"""Stopping the wake-up listener (every context's close) does not wait out the listener's poll."""

from __future__ import annotations

import threading

from shared.chat import wake
from shared.context import AppContext


def test_stop_ends_a_subscribed_listener_without_waiting_out_its_poll(ctx: AppContext, monkeypatch) -> None:
    monkeypatch.setattr(wake, "_POLL_SECONDS", 60.0)  # a read that only a message ends early
    hub = wake.hub(ctx)
    assert hub.ready()
    listener = hub._thread
    assert listener is not None and listener.is_alive()
    stopping = threading.Thread(target=hub.stop)
    stopping.start()
    stopping.join(timeout=10)  # far below the 60 s poll
    assert not stopping.is_alive(), "stop() waited for the listener's poll"
    assert not listener.is_alive() and not hub.connected
