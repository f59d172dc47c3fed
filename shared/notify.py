"""Push notifications to users, off the request path: enqueue, then find devices, send, forget dead tokens.

A request only builds the message (shared.push's policy for its kind) and puts it on this
context's bounded in-process queue; a few worker threads (PUSH_WORKERS) look up the devices,
send through the provider and delete the tokens FCM reports dead. So a slow, failing or
throttling FCM, or a user with many devices, never holds another user's request.

Pushes are best-effort and follow a committed Postgres transaction: the apps also poll, so
- a full queue (PUSH_QUEUE_SIZE) drops the new push, logged as event `push.dropped`;
- at process exit the queue gets a few seconds to drain (Cloud Run stops an instance 10 s after
  SIGTERM); what is left is dropped and logged the same way;
- a push whose expiry passed while it waited is not sent (event `push.expired`).
Outcomes are logged as stable events: `push.sent` (count), `push.failed` (one line per FCM
error code: error, count), `push.tokens_deleted` (count). docs/push.md has the whole policy.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from shared import devices, oplog, push
from shared.context import AppContext

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_SECONDS = 8.0  # within Cloud Run's 10 s between SIGTERM and SIGKILL
_IDLE_SECONDS = 30.0  # an idle worker thread ends; the next push starts one again


@dataclass(frozen=True)
class _Job:
    user_type: str
    user_ids: tuple[str, ...]
    message: push.Message


class Outbox:
    """A bounded queue of pushes and the threads that deliver them for one context."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=ctx.settings.push_queue_size)
        self._max_workers = ctx.settings.push_workers
        self._workers = 0
        self._lock = threading.Lock()
        atexit.register(_drain_at_exit, weakref.ref(self))

    def put(self, job: _Job) -> bool:
        """Queue `job` without waiting; False (and logged) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            oplog.emit("push.dropped", reason="queue_full", count=1)
            return False
        with self._lock:
            if self._workers < self._max_workers:
                self._workers += 1
                threading.Thread(target=self._work, name="push-worker", daemon=True).start()
        return True

    def _work(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._workers -= 1
                        return
                continue
            try:
                deliver(self._ctx, job.user_type, job.user_ids, job.message)
            finally:
                self._queue.task_done()

    def drain(self, timeout: float) -> bool:
        """Wait until every queued push was delivered (or `timeout` passed); True when drained."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def drop_left(self) -> int:
        """Give the queue SHUTDOWN_DRAIN_SECONDS, then log what is left as dropped; return that count."""
        if self.drain(SHUTDOWN_DRAIN_SECONDS):
            return 0
        left = self._queue.qsize()
        oplog.emit("push.dropped", reason="shutdown", count=left)
        return left

    def close(self) -> None:
        """Drain briefly, drop the rest (the context is closing)."""
        self.drop_left()


def _drain_at_exit(ref: weakref.ref[Outbox]) -> None:
    box = ref()  # a weak reference: a test's dropped context is not kept alive until exit
    if box is not None:
        box.drop_left()


def outbox(ctx: AppContext) -> Outbox:
    """The context's outbox, built once; closing the context drains it like process exit does."""

    def build() -> Outbox:
        box = Outbox(ctx)
        ctx.on_close(box.close)
        return box

    built: Outbox = ctx.singleton("push-outbox", build)
    return built


def send(ctx: AppContext, user_type: str, user_ids: Iterable[str], data: dict[str, str]) -> bool:
    """Queue the push `data["type"]` for every device of these users; never raises, never waits.

    True when queued; False when the queue was full or the message is one FCM would refuse.
    """
    ids = tuple(sorted({str(i) for i in user_ids}))
    if not ids:
        return False
    try:
        msg = push.message(data["type"], data, ctx.now(), previews=ctx.settings.push_message_preview)
        return outbox(ctx).put(_Job(user_type, ids, msg))
    except Exception:  # a push must never fail the transition that already committed
        log.exception("push not queued", extra={"push_type": data.get("type")})
        return False


def drain(ctx: AppContext, timeout: float = 30.0) -> bool:
    """Wait for the context's queued pushes to be delivered (tests, shutdown)."""
    return outbox(ctx).drain(timeout)


def deliver(ctx: AppContext, user_type: str, user_ids: Iterable[str], msg: push.Message) -> push.PushResult:
    """Send `msg` to every device of these users now, delete dead tokens, log counts; never raises."""
    try:
        now = ctx.now()
        by_user = devices.tokens_for(ctx, user_type, list(user_ids))
        tokens = [token for user_tokens in by_user.values() for token in user_tokens]
        if not tokens:
            return push.PushResult()
        if msg.expires_at <= now:
            oplog.emit("push.expired", push_type=msg.kind, count=len(tokens))
            return push.PushResult()
        result = push.provider(ctx).send(tokens, msg, now)
        _log_result(msg.kind, result)
        if result.dead:
            deleted = devices.delete_tokens(ctx, result.dead)
            oplog.emit("push.tokens_deleted", count=deleted)
        return result
    except Exception:  # best-effort: the state change committed, and the apps poll
        log.exception("push could not be delivered", extra={"push_type": msg.kind})
        oplog.emit("push.failed", push_type=msg.kind, error="exception", count=1)
        return push.PushResult(failed=1)


def _log_result(kind: str, result: push.PushResult) -> None:
    if result.sent:
        oplog.emit("push.sent", push_type=kind, count=result.sent)
    for error, count in sorted(result.errors.items()):
        oplog.emit("push.failed", push_type=kind, error=error, count=count)
