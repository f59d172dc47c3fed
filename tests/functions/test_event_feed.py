"""The per-user event feed through the real entry points (docs/events.md)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared import availability, context, retention
from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.chat_support import active_session, mark_read, send
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_token, mitra_token


def _feed(side: str, headers: dict[str, str], **query: Any) -> Any:
    return client(f"chat_{side}_events").get(f"/api/{side}/events", headers=headers, query_string=query)


def _head(side: str, headers: dict[str, str]) -> int:
    got = _feed(side, headers)
    assert got.status_code == 200, got.json
    assert got.json["events"] == []
    return int(got.json["next_after"])


def _types(resp: Any) -> list[tuple[str, str | None]]:
    return [(e["type"], e["detail"].get("kind")) for e in resp.json["events"]]


def test_a_mitra_follows_offer_accept_payment_chat_and_end_from_the_feed(isolated_ctx: AppContext) -> None:
    [(mitra_id, mitra), (_, other)] = online_mitras(isolated_ctx, 2)
    _, cust = customer(isolated_ctx)
    mitra_at, other_at, cust_at = _head("mitra", mitra), _head("mitra", other), _head("client", cust)

    session = api("request", cust).json
    offered = _feed("mitra", mitra, after=mitra_at)
    [offer] = offered.json["events"]
    assert (offer["type"], offer["session_id"]) == ("offer_new", session["id"])
    assert offer["detail"]["offer_expires_at"]
    mitra_at = offered.json["next_after"]

    assert api("accept", mitra, session["id"]).status_code == 200
    accepted = _feed("mitra", mitra, after=mitra_at)
    assert _types(accepted) == [("session", "accepted")]
    assert accepted.json["events"][0]["detail"]["payment_deadline_at"]
    mitra_at = accepted.json["next_after"]
    # The other mitra's offer closed; the customer saw its request and the accept.
    assert _types(_feed("mitra", other, after=other_at)) == [("offer_new", None), ("offer_closed", None)]
    assert _types(_feed("client", cust, after=cust_at)) == [("session", "requested"), ("session", "accepted")]

    assert api("pay", bearer(cc_token(isolated_ctx)), session["id"]).status_code == 200
    sent = send("client", cust, session["id"], "hello").json
    assert mark_read("mitra", mitra, session["id"], sent["id"]).status_code == 200
    day = _feed("mitra", mitra, after=mitra_at)
    assert _types(day) == [("session", "active"), ("message", None)]
    assert day.json["events"][0]["detail"]["expires_at"]
    assert day.json["events"][1]["detail"]["message_id"] == sent["id"]
    customer_view = _feed("client", cust, after=cust_at).json["events"]
    assert customer_view[-1]["type"] == "read_marker" and customer_view[-1]["detail"]["last_read_id"] == sent["id"]

    assert api("end", cust, session["id"]).status_code == 200
    ended = _feed("mitra", mitra, after=day.json["next_after"])
    assert _types(ended) == [("session", "ended")]
    assert ended.json["events"][0]["detail"]["end_reason"] == "customer_ended"
    assert mitra_id  # the feed is the caller's own: nothing above named the mitra


def test_a_feed_wait_wakes_on_an_event_and_on_the_session_expiry(isolated_ctx: AppContext, clock: FakeClock) -> None:
    pair = active_session(isolated_ctx)
    at = _head("mitra", pair.mitra)
    got: dict[str, Any] = {}

    def wait(since: int) -> None:
        started = time.monotonic()
        resp = _feed("mitra", pair.mitra, after=since, wait=8)
        got["body"], got["waited"] = resp.json, time.monotonic() - started

    thread = threading.Thread(target=wait, args=(at,))
    thread.start()
    time.sleep(0.5)
    sent = send("client", pair.customer, pair.session_id, "ping").json
    thread.join(timeout=15)
    assert [e["detail"].get("message_id") for e in got["body"]["events"]] == [sent["id"]]
    assert got["waited"] < 5

    # Nobody reads the chat and no sweep runs: the feed's own wait ends the session at expires_at.
    with isolated_ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE chat_sessions SET expires_at = :at WHERE id = CAST(:s AS uuid)",
            at=clock() + timedelta(milliseconds=1500),
            s=pair.session_id,
        )
        tx.commit()
    threading.Timer(1.0, clock.advance, args=(2,)).start()
    thread = threading.Thread(target=wait, args=(got["body"]["next_after"],))
    thread.start()
    thread.join(timeout=15)
    assert [(e["type"], e["detail"]["kind"], e["detail"]["status"]) for e in got["body"]["events"]] == [
        ("session", "ended", "ended")
    ]
    assert got["waited"] < 5


def test_feed_bad_input_is_a_400_and_the_wait_is_capped_per_caller(isolated_ctx: AppContext) -> None:
    [(_, mitra)] = online_mitras(isolated_ctx, 1)
    for query in ({"after": -1}, {"wait": 26}, {"limit": 0}, {"after": "x"}):
        got = _feed("mitra", mitra, **query)
        assert got.status_code == 400 and got.json["error"]["code"] == "VALIDATION_FAILED", query
    at = _head("mitra", mitra)
    answers: list[int] = []

    def wait() -> None:
        answers.append(_feed("mitra", mitra, after=at, wait=3).status_code)

    threads = [threading.Thread(target=wait) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert sorted(answers) == [200] * 4 + [429] * 2


def test_a_wait_beyond_the_deployments_longest_hold_is_held_that_long_and_answered_empty(
    isolated_ctx: AppContext,
) -> None:
    [(_, mitra)] = online_mitras(isolated_ctx, 1)
    at = _head("mitra", mitra)
    shorter = AppContext(replace(isolated_ctx.settings, chat_max_wait_seconds=1), clock=isolated_ctx.clock)
    context.install(shorter)
    try:
        started = time.monotonic()
        got = _feed("mitra", mitra, after=at, wait=25)
        held = time.monotonic() - started
    finally:
        context.install(isolated_ctx)
        shorter.close()
    assert got.status_code == 200 and got.json["events"] == [] and got.json["next_after"] == at
    assert 1 <= held < 10, held  # CHAT_MAX_WAIT_SECONDS=1 held it, not the 25 asked


def test_old_events_are_deleted_by_retention_and_a_cursor_below_them_is_told_to_reset(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    [(mitra_id, mitra)] = online_mitras(isolated_ctx, 1)
    _, cust = customer(isolated_ctx)
    at = _head("mitra", mitra)
    api("request", cust)
    clock.advance(8 * 24 * 3600)
    mitra = bearer(mitra_token(isolated_ctx, mitra_id)[0])  # the first token expired meanwhile
    deleted = retention.delete_expired(isolated_ctx)
    assert deleted["user_events"] >= 2  # the mitra's offer and the customer's request
    got = _feed("mitra", mitra, after=at)
    # The offer_new is gone; the read settled the long-expired search, so its closing is new.
    assert _types(got) == [("offer_closed", None)] and got.json["reset"] is True
    # Resynced: a fresh head is not reset.
    assert _feed("mitra", mitra, after=_head("mitra", mitra)).json["reset"] is False


def test_deactivation_and_reactivation_are_account_events_in_the_mitras_feed(isolated_ctx: AppContext) -> None:
    [(mitra_id, mitra)] = online_mitras(isolated_ctx, 1)
    at = _head("mitra", mitra)
    availability.deactivate(isolated_ctx, mitra_id, "cc:test")
    assert _feed("mitra", mitra, after=at).status_code in (401, 403)  # its access is gone meanwhile
    availability.activate(isolated_ctx, mitra_id, "cc:test")
    fresh = bearer(mitra_token(isolated_ctx, mitra_id)[0])
    got = _feed("mitra", fresh, after=at)
    assert [(e["type"], e["detail"]["status"]) for e in got.json["events"]] == [
        ("account", "deactivated"),
        ("account", "active"),
    ]
