"""Long polls that hold no thread while they wait, and the cap on one caller's waits.

Three waits run the one wait loop (`_long_poll`): the message receive (`messages`, keyed by
session id), the per-user event feed (`events`, keyed `feed:<type>:<id>`, docs/events.md) and the
mitra's offers list with `wait` (`offers`, woken by the same feed key).

The receive functions are coroutines (`functions_framework.aio`, see shared.http_async). A
waiting request is an `asyncio.Event` in this process's `Hub`; it holds no thread, no Postgres
and no Valkey connection. The Hub owns ONE pub/sub connection per process (redis-py's asyncio
client on a blocking pool of one: the default asyncio pool raises MaxConnectionsError when it
runs out instead of waiting), subscribed to `Keys.chat_wake`; every published session id sets
the events of that session's local waiters, which then re-read Postgres. Publishing is
shared.sessions.effects.wake_readers (after each committed send or transition).

Rules (docs/chat.md, "Bounded waiting"):
- a caller (user type and id) holds at most CHAT_MAX_WAITS_PER_CALLER (default 4) waits on
  one instance; a wait beyond that is refused at once with 429 TOO_MANY_WAITS, never queued;
- when the listener is not subscribed (Valkey down, or still connecting on a cold start after
  FIRST_CONNECT_WAIT_SECONDS) a read answers at once from Postgres: plain polling. When the
  connection drops or comes back, every local waiter re-reads Postgres, since wake-ups sent
  meanwhile were lost;
- on SIGTERM every waiter is answered at once and no new wait starts: Cloud Run stops an
  instance 10 s after SIGTERM, well before a 25 s wait ends
  (https://cloud.google.com/run/docs/container-contract#instance-shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import redis.asyncio as aioredis

from shared import feed
from shared.auth.principal import Principal
from shared.chat import lists, service
from shared.config import Settings
from shared.context import AppContext
from shared.errors import RateLimited
from shared.http_async import blocking
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
FIRST_CONNECT_WAIT_SECONDS = 1.0  # a cold instance's first reader waits this long for the listener
_POLL_SECONDS = 1.0
# A wait wakes at its session's deadline to settle it: a little after it (clocks of one process
# agree; the margin covers the rounding of timers), and never sooner than this again and again.
DEADLINE_MARGIN_SECONDS = 0.05
MIN_DEADLINE_SLEEP_SECONDS = 0.2
T = TypeVar("T")
_MAX_BACKOFF_SECONDS = 5.0


class Hub:
    """This process's wake-up listener, its waiters (session id -> events) and waits per caller.

    It serves the event loop that first uses it (one per uvicorn worker process); all its
    state is touched on that loop only, so it needs no locks.
    """

    def __init__(self, settings: Settings, channel: str) -> None:
        self._settings = settings
        # An app waits on one session at a time; a few more allow for a retry racing its
        # abandoned request, and a second device.
        self._max_per_caller = settings.chat_max_waits_per_caller
        self._channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._wakes: dict[str, int] = {}  # session id -> number of its last wake-up (while it has waiters)
        self._wake_numbers = itertools.count(1)  # never reused, so a finished generation never returns
        self._reads: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self._callers: dict[str, int] = {}
        self._connected = False
        self._stopping = False
        self._first_attempt: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Subscribed, and the process is not stopping: a wait can rely on being woken."""
        return self._connected and not self._stopping

    @property
    def waiting(self) -> int:
        """Requests of this process currently waiting."""
        return sum(self._callers.values())

    async def ready(self) -> bool:
        """Start the listener if needed; True when it is subscribed (waits briefly on a cold start only)."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._first_attempt = asyncio.Event()
            self._task = self._loop.create_task(self._run(), name="chat-wake")
            _answer_waiters_on_sigterm(self)
        assert self._first_attempt is not None
        if not self._first_attempt.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_attempt.wait(), FIRST_CONNECT_WAIT_SECONDS)
        return self.connected

    def full(self, caller: str) -> bool:
        """True when `caller` already holds the most waits allowed on this instance."""
        return self._callers.get(caller, 0) >= self._max_per_caller

    @contextlib.contextmanager
    def admit(self, caller: str) -> Iterator[None]:
        """Count a wait of `caller`; 429 TOO_MANY_WAITS when it already holds the maximum here."""
        if self.full(caller):
            raise RateLimited(
                RETRY_AFTER_SECONDS,
                f"at most {self._max_per_caller} waiting reads per caller",
                code="TOO_MANY_WAITS",
            )
        self._callers[caller] = self._callers.get(caller, 0) + 1
        try:
            yield
        finally:
            left = self._callers.pop(caller) - 1
            if left:
                self._callers[caller] = left

    @contextlib.contextmanager
    def listen(self, session_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `session_id` is published (or the connection changes, or we stop)."""
        event = asyncio.Event()
        self._waiters.setdefault(session_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(session_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[session_id]
                    self._wakes.pop(session_id, None)

    def wakes(self, session_id: str) -> int:
        """The number of the last wake-up of `session_id`'s waiters (the generation of a re-read)."""
        return self._wakes.get(session_id, 0)

    async def shared_read(self, key: tuple[Any, ...], read: Callable[[], Awaitable[T]]) -> T:
        """One read for every waiter asking the same `key` at the same time.

        Woken waiters of one session re-read the same rows; the key holds the caller, the
        query and the wake generation (`wakes`), so a waiter only joins a read started after
        the wake-up it answers, never one that began before the commit it was woken for.
        """
        shared = self._reads.get(key)
        if shared is None:
            shared = asyncio.ensure_future(read())
            self._reads[key] = shared
            shared.add_done_callback(lambda _: self._reads.pop(key, None))
        return await asyncio.shield(shared)

    def answer_all(self) -> None:
        """Wake every waiter to answer now, and let no new wait start (the instance is stopping)."""
        self._stopping = True
        self._wake(None)

    def stop(self) -> None:
        """Stop the listener (tests, shutdown); callable from any thread."""
        self._stopping = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)

    def _wake(self, session_id: str | None) -> None:
        sessions = list(self._waiters) if session_id is None else [session_id]
        for session in sessions:
            events = self._waiters.get(session)
            if events:
                self._wakes[session] = next(self._wake_numbers)
                for event in events:
                    event.set()

    def _lost(self) -> None:
        assert self._first_attempt is not None
        self._connected = False
        self._first_attempt.set()
        self._wake(None)  # waiters fall back to answering from Postgres

    async def _run(self) -> None:
        assert self._first_attempt is not None
        backoff = 0.2
        while True:
            client = _subscriber(self._settings)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=_POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._connected = True
                        self._first_attempt.set()
                        backoff = 0.2
                        self._wake(None)  # anything published while we were away was lost
                    elif message["type"] == "message":
                        self._wake(str(message["data"]))
            except VALKEY_ERRORS as exc:
                if self._connected:
                    log.warning("chat wake listener lost Valkey", extra={"error": type(exc).__name__})
                self._lost()
            except asyncio.CancelledError:
                self._lost()
                raise
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)


def _subscriber(settings: Settings) -> aioredis.Redis:
    """An asyncio client for the one pub/sub connection, on a blocking pool of one.

    Classic pub/sub reaches every node of a cluster, so on a cluster the node of VALKEY_URL
    serves the subscription like any other.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": settings.valkey_timeout_seconds,
        "health_check_interval": 30,  # an idle subscription is PINGed, so a dead peer is noticed
    }
    if (settings.valkey_url or "").startswith("rediss://"):
        options["ssl_cert_reqs"] = "required"
        if settings.valkey_ca_cert:
            options["ssl_ca_data"] = settings.valkey_ca_cert
        if settings.valkey_ca_file:
            options["ssl_ca_certs"] = settings.valkey_ca_file
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.valkey_url or "", max_connections=1, timeout=settings.valkey_timeout_seconds, **options
    )
    return aioredis.Redis(connection_pool=pool)


def _answer_waiters_on_sigterm(hub: Hub) -> None:
    """Chain a SIGTERM handler that answers the waiters before the server's own shutdown runs.

    uvicorn's worker installs its handler with signal.signal while it serves; ours runs first,
    then calls it. Signals reach the main thread only (where the worker runs its loop).
    """
    loop = hub._loop
    if loop is None or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return  # no server shutdown to chain to (default action): nothing would wait for answers

    def on_sigterm(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(hub.answer_all)
        previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def hub(ctx: AppContext) -> Hub:
    """The context's listener (one per process), built on first use."""
    channel = ctx.keys.chat_wake
    built: Hub = ctx.singleton("chat.longpoll", lambda: _built(ctx, channel))
    return built


def _built(ctx: AppContext, channel: str) -> Hub:
    made = Hub(ctx.settings, channel)
    ctx.on_close(made.stop)
    return made


async def messages_before(
    ctx: AppContext, principal: Principal, session_id: str, before: int, limit: int
) -> dict[str, Any]:
    """The newest messages before `before` (0: the latest); never waits (it pages back, not forward)."""
    return await blocking(service.read_before, ctx, principal, session_id, before, limit)


async def messages(
    ctx: AppContext, principal: Principal, session_id: str, after: int, limit: int, wait: int
) -> dict[str, Any]:
    """Messages after `after`; with `wait`, hold until one arrives, the status or the other side's
    read marker changes, or time is up.

    The wait also ends at the session's own deadline (the end of an active session, the payment
    or pairing deadline): the re-read then settles it, so a poll never answers `active` past
    `expires_at`. A wait that runs out reads once more, so it answers the read markers of the
    moment it answers, not of the moment it started.
    """

    async def read() -> service.Poll:
        return await blocking(service.poll, ctx, principal, session_id, after, limit)

    def answers(first: service.Poll, current: service.Poll) -> bool:
        return first.view["session_status"] in service.FINAL_STATUSES or not _unchanged(current.view, first.view)

    current, ran_out = await _long_poll(ctx, principal, session_id, wait, read, answers, (after, limit))
    if ran_out:
        current = await read()  # the read markers (and anything unpublished) as of now
    return current.view


async def _long_poll(
    ctx: AppContext,
    principal: Principal,
    key: str,
    wait: int,
    read: Callable[[], Awaitable[service.Poll]],
    answers: Callable[[service.Poll, service.Poll], bool],
    query: tuple[Any, ...],
) -> tuple[service.Poll, bool]:
    """The one wait loop of every long poll: (the read to answer, whether the wait ran out).

    `read` is the poll's query; `answers(first, current)` says whether `current` (a read, the
    first one included) is worth answering now. With no wait, or no listener (Valkey down, the
    instance stopping), it reads once: plain polling. A caller holding the most waits here gets
    what there is now when that answers, else 429 TOO_MANY_WAITS. Otherwise it registers on
    `key` first and then reads, so a change committed before is read and one committed after
    wakes it; each wake-up re-reads (shared with the caller's other waiters of the same `query`
    and wake-up), until a read answers, the listener drops (wake-ups may be lost: answer now,
    the app polls again), `wait` seconds pass, or the read's own deadline comes (its re-read
    settles it).
    """
    listener = hub(ctx)
    if wait <= 0 or not await listener.ready():
        return await read(), False
    caller = f"{principal.user_type}:{principal.user_id}"
    if listener.full(caller):
        now = await read()  # what there is now is never refused; only another wait is
        if answers(now, now):
            return now, False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with listener.admit(caller), listener.listen(key) as event:
        first = current = await read()  # registered first: a change committed before is read here
        while not answers(first, current) and listener.connected:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return current, True
            due = _seconds_until(ctx, current.deadline)
            try:
                async with asyncio.timeout(remaining if due is None else min(remaining, due)):
                    await event.wait()
            except TimeoutError:
                if due is None or due >= remaining:
                    return current, True
                # A deadline came: the re-read below settles it.
            event.clear()
            current = await listener.shared_read((caller, key, *query, listener.wakes(key)), read)
    return current, False


def _unchanged(view: dict[str, Any], first: dict[str, Any]) -> bool:
    """Nothing to answer yet: no message, the same status, the same read marker of the other side."""
    return (
        not view["messages"]
        and view["session_status"] == first["session_status"]
        and view["peer_last_read_id"] == first["peer_last_read_id"]
    )


def _seconds_until(ctx: AppContext, moment: datetime | None) -> float | None:
    """Seconds until a session deadline (slightly after it, so the re-read finds it due)."""
    if moment is None:
        return None
    return max((moment - ctx.now()).total_seconds() + DEADLINE_MARGIN_SECONDS, MIN_DEADLINE_SLEEP_SECONDS)


# ---- the per-user event feed (docs/events.md) ---------------------------------------------------


async def events(ctx: AppContext, principal: Principal, after: int | None, limit: int, wait: int) -> dict[str, Any]:
    """The caller's events after `after`; with `wait`, hold until one is written or time is up.

    The same waiting as `messages`: the Hub's one pub/sub connection wakes the key
    `feed:<type>:<id>` that every write of the caller's events publishes after its commit; the
    same per-caller cap (429 TOO_MANY_WAITS) counts these waits with the message polls. It also
    wakes at the next deadline of the caller's live sessions, whose re-read settles them.
    Without `after` it answers at once: no events, and the head to go on from.
    """

    async def read() -> service.Poll:
        return await blocking(service.feed_poll, ctx, principal, after, limit)

    def answers(_: service.Poll, current: service.Poll) -> bool:
        return bool(current.view["events"] or current.view["reset"])

    key = feed.wake_key(principal.user_type, principal.user_id)
    current, _ = await _long_poll(ctx, principal, key, 0 if after is None else wait, read, answers, (after, limit))
    return current.view


async def offers(
    ctx: AppContext, principal: Principal, view: str, cursor: str | None, limit: int, wait: int
) -> dict[str, Any]:
    """A page of the mitra's sessions; view=offers with `wait` holds until an offer is open.

    An offer writes an `offer_new` event to the mitra's feed, whose publish wakes this wait on
    any instance (the feed's key); the same cap per caller as every other wait.
    """

    async def read() -> service.Poll:  # a page has no deadline of its own
        return service.Poll(await blocking(lists.mitra_sessions, ctx, principal, view, cursor, limit), None)

    def answers(_: service.Poll, current: service.Poll) -> bool:
        return bool(current.view["sessions"])

    key = feed.wake_key(principal.user_type, principal.user_id)
    page, _ = await _long_poll(ctx, principal, key, wait, read, answers, ("offers", view, cursor, limit))
    return page.view
