"""The message long poll settles a session that reaches its deadline while it waits, answers the
read markers of the moment it answers, and wakes on the other side's read marker (docs/chat.md)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from shared.context import AppContext
from tests.support.chat_support import active_session, mark_read, receive, send
from tests.support.helpers import FakeClock


def _wait_in_thread(side: str, headers: dict[str, str], session_id: str, after: int, wait: int) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        resp = receive(side, headers, session_id, after=after, wait=wait)
        got["status"], got["body"], got["waited"] = resp.status_code, resp.json, time.monotonic() - started

    got["thread"] = threading.Thread(target=run)
    got["thread"].start()
    return got


def test_a_wait_that_outlives_expires_at_answers_ended_not_active(isolated_ctx: AppContext, clock: FakeClock) -> None:
    pair = active_session(isolated_ctx)
    with isolated_ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE chat_sessions SET expires_at = :at WHERE id = CAST(:s AS uuid)",
            at=clock() + timedelta(milliseconds=1500),
            s=pair.session_id,
        )
        tx.commit()
    after = receive("mitra", pair.mitra, pair.session_id).json["next_after"]
    # The session's time runs out while the poll waits (the clock moves past expires_at).
    threading.Timer(1.0, clock.advance, args=(2,)).start()
    started = time.monotonic()
    got = receive("mitra", pair.mitra, pair.session_id, after=after, wait=6)
    waited = time.monotonic() - started
    assert got.status_code == 200
    # Nobody ran the sweep: the poll itself settled the session when its end came.
    assert got.json["session_status"] == "ended"
    assert [(m["body"], m["detail"]["end_reason"]) for m in got.json["messages"]] == [("ended", "expired")]
    assert waited < 5, waited  # answered at the end, not when the wait ran out


def test_a_read_marker_of_the_other_side_wakes_the_wait(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    sent = send("client", pair.customer, pair.session_id, "did you see this?").json
    waiting = _wait_in_thread("client", pair.customer, pair.session_id, sent["id"], 10)
    time.sleep(0.5)
    assert waiting["thread"].is_alive()
    assert mark_read("mitra", pair.mitra, pair.session_id, sent["id"]).status_code == 200
    waiting["thread"].join(timeout=15)
    assert waiting["status"] == 200
    assert waiting["body"]["messages"] == [] and waiting["body"]["peer_last_read_id"] == sent["id"]
    assert waiting["waited"] < 5, waiting["waited"]


def test_the_own_read_marker_does_not_end_the_own_wait(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    sent = send("mitra", pair.mitra, pair.session_id, "hi").json
    waiting = _wait_in_thread("client", pair.customer, pair.session_id, sent["id"], 2)
    time.sleep(0.5)
    assert mark_read("client", pair.customer, pair.session_id, sent["id"]).status_code == 200
    waiting["thread"].join(timeout=10)
    assert waiting["body"]["messages"] == [] and waiting["waited"] >= 2


def test_a_wait_that_runs_out_answers_the_read_marker_of_now(isolated_ctx: AppContext) -> None:
    """A marker moved without a wake-up (published nowhere) is still answered when the wait ends."""
    pair = active_session(isolated_ctx)
    sent = send("client", pair.customer, pair.session_id, "read me").json
    waiting = _wait_in_thread("client", pair.customer, pair.session_id, sent["id"], 2)
    time.sleep(0.5)
    with isolated_ctx.db.transaction() as tx:  # the marker moves, but no wake-up is published
        tx.execute(
            "INSERT INTO chat_read_markers (session_id, reader_type, reader_id, last_read_id, updated_at)"
            " VALUES (CAST(:s AS uuid), 'mitra', CAST(:m AS uuid), :n, now())",
            s=pair.session_id,
            m=pair.mitra_id,
            n=sent["id"],
        )
        tx.commit()
    waiting["thread"].join(timeout=10)
    assert waiting["body"]["peer_last_read_id"] == sent["id"]
