"""Lifecycle transitions in the conversation: system messages written with the transition,
and readers waiting on the session woken by them (sweep included)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shared.context import AppContext
from shared.sessions.settle import expire_due_sessions
from tests.support.chat_support import active_session, receive
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_token


def _wait_during(side: str, headers: dict[str, str], session_id: str, after: int, action: Callable[[], Any]) -> dict:
    """Start a 10 s wait, run `action` once the reader waits, return what the reader got."""
    got: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        got["body"] = receive(side, headers, session_id, after=after, wait=10).json
        got["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    action()
    thread.join(timeout=15)
    assert got["seconds"] < 5, "the reader was not woken by the transition"
    return dict(got["body"])


def test_the_expiry_sweep_writes_ended_and_wakes_both_parties_readers(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    after = receive("mitra", pair.mitra, pair.session_id).json["next_after"]

    def sweep_after_the_end() -> None:
        clock.advance(31 * 60)
        assert expire_due_sessions(ctx)["ended_active"] == 1

    got = _wait_during("mitra", pair.mitra, pair.session_id, after, sweep_after_the_end)
    assert got["session_status"] == "ended"
    [message] = got["messages"]
    assert (message["sender_type"], message["body"], message["detail"]) == (
        "system",
        "ended",
        {"end_reason": "expired"},
    )


def test_a_reader_of_a_pending_payment_session_wakes_when_it_becomes_active(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    [(_, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    api("accept", mitra_auth, sid)
    first = receive("client", auth, sid).json
    assert [m["body"] for m in first["messages"]] == ["accepted"]
    assert first["messages"][0]["detail"]["payment_deadline_at"]

    got = _wait_during("client", auth, sid, first["next_after"], lambda: api("pay", bearer(cc_token(ctx)), sid))
    assert got["session_status"] == "active"
    assert [m["body"] for m in got["messages"]] == ["active"]


def test_reroute_hands_the_conversation_to_the_next_mitra_and_shuts_the_previous_one_out(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    [(_, next_mitra)] = online_mitras(ctx, 1)
    assert api("reroute", pair.customer, pair.session_id).status_code == 200
    assert receive("mitra", pair.mitra, pair.session_id).status_code == 404
    assert api("accept", next_mitra, pair.session_id).status_code == 200
    bodies = [m["body"] for m in receive("mitra", next_mitra, pair.session_id).json["messages"]]
    assert bodies == ["accepted", "active", "rerouted", "accepted", "active"]  # a paid session restarts at once


def test_a_wait_on_a_session_that_is_over_answers_at_once(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    api("end", pair.customer, pair.session_id)
    after = receive("client", pair.customer, pair.session_id).json["next_after"]
    started = time.monotonic()
    got = receive("client", pair.customer, pair.session_id, after=after, wait=10).json
    assert got["messages"] == [] and got["session_status"] == "ended"
    assert time.monotonic() - started < 5
