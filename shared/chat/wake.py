"""Cross-instance wake-ups for long-polling chat readers, through Valkey pub/sub.

Every instance keeps ONE pub/sub connection, owned by one daemon thread, subscribed to the
channel `Keys.chat_wake`. A committed send or transition publishes its session id there
(shared.sessions.effects.wake_readers); every instance's listener receives it and sets the `threading.Event` of each
local request waiting on that session. A waiting request therefore holds no Valkey and no
Postgres connection: however many requests wait, an instance uses one pub/sub connection
plus its ordinary client pool (bounded by its request threads). Design: docs/chat.md.

When the listener is not connected (Valkey down, or still connecting after a cold start),
`Hub.ready()` says so and readers answer at once from Postgres (plain polling). When the
connection drops or comes back, every local waiter is woken to re-read Postgres, since
wake-ups sent meanwhile were lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from shared.context import AppContext
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)

FIRST_CONNECT_WAIT_SECONDS = 1.0  # a cold instance's first reader waits this long for the listener
_POLL_SECONDS = 1.0  # how often the listener thread checks for shutdown while idle
_MAX_BACKOFF_SECONDS = 5.0


class Hub:
    """The per-process listener and its registry of local waiters (session id -> events)."""

    def __init__(self, ctx: AppContext) -> None:
        self._client = ctx.valkey
        self._channel = ctx.keys.chat_wake
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._connected = threading.Event()
        self._first_attempt = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        ctx.on_close(self.stop)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def ready(self) -> bool:
        """Start the listener if needed; True when it is subscribed (waits briefly on a cold start only)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chat-wake", daemon=True)
                self._thread.start()
        self._first_attempt.wait(FIRST_CONNECT_WAIT_SECONDS)
        return self._connected.is_set()

    @contextlib.contextmanager
    def listen(self, session_id: str) -> Iterator[threading.Event]:
        """Register an event set whenever `session_id` is published (or the connection changes)."""
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(session_id, set()).add(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._waiters.get(session_id)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[session_id]

    @property
    def waiting(self) -> int:
        """Requests of this process currently waiting."""
        with self._lock:
            return sum(len(events) for events in self._waiters.values())

    def stop(self) -> None:
        """Stop the listener thread (tests, shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_POLL_SECONDS * 3)

    def _wake(self, session_id: str | None) -> None:
        with self._lock:
            if session_id is None:
                events = [e for group in self._waiters.values() for e in group]
            else:
                events = list(self._waiters.get(session_id, ()))
        for event in events:
            event.set()

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            pubsub: Any = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._connected.set()
                        self._first_attempt.set()
                        backoff = 0.2
                        self._wake(None)  # anything published while we were away was lost
                    elif message["type"] == "message":
                        self._wake(str(message["data"]))
            except VALKEY_ERRORS as exc:
                if self._connected.is_set():
                    log.warning("chat wake listener lost Valkey", extra={"error": type(exc).__name__})
                self._connected.clear()
                self._first_attempt.set()
                self._wake(None)  # waiters fall back to answering from Postgres
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
        self._connected.clear()


def hub(ctx: AppContext) -> Hub:
    """The context's listener (one per process), built on first use."""
    ctx.valkey  # noqa: B018 (built before singleton() takes the context lock, which is not reentrant)
    built: Hub = ctx.singleton("chat.wake", lambda: Hub(ctx))
    return built
