"""The apps' session lists (docs/chat.md): a restarted app rebuilds its state from them alone."""

from __future__ import annotations

import threading
import time
from typing import Any

from shared import app_config
from shared.context import AppContext
from tests.support.chat_support import sessions
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_token


def _ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.json
    return [s["id"] for s in resp.json["sessions"]]


def test_a_restarted_mitra_app_finds_its_open_offer_and_then_its_active_session(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    [(mitra_id, mitra_auth)] = online_mitras(ctx, 1)
    customer_id, auth = customer(ctx)
    sid = api("request", auth).json["id"]

    # The app missed the push and restarted: the offer is in its list, with its deadline.
    [offer] = sessions("mitra", mitra_auth, view="offers").json["sessions"]
    assert (offer["id"], offer["status"], offer["customer"]["id"]) == (sid, "searching", customer_id)
    assert offer["offer_expires_at"] and offer["offered_at"]
    assert _ids(sessions("mitra", mitra_auth, view="current")) == []

    assert api("accept", mitra_auth, sid).status_code == 200
    assert _ids(sessions("mitra", mitra_auth, view="offers")) == []
    assert api("pay", bearer(cc_token(ctx)), sid).status_code == 200

    # Restarted again: the active session is in "current", with the cursor of its conversation.
    [current] = sessions("mitra", mitra_auth, view="current").json["sessions"]
    assert (current["id"], current["status"], current["mitra_id"]) == (sid, "active", mitra_id)
    assert current["last_message_id"] > 0  # the system messages of accept and payment
    assert _ids(sessions("client", auth, view="open")) == [sid]
    assert sessions("client", auth, view="open").json["sessions"][0]["mitra"]["id"] == mitra_id

    assert api("end", auth, sid).status_code == 200
    assert _ids(sessions("mitra", mitra_auth, view="current")) == []
    assert _ids(sessions("mitra", mitra_auth, view="history")) == [sid]
    assert _ids(sessions("client", auth, view="open")) == []
    assert _ids(sessions("client", auth, view="history")) == [sid]


def test_answered_and_timed_out_offers_leave_the_offers_list(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    [(_, first), (_, second)] = online_mitras(ctx, 2)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    assert api("decline", first, sid).status_code == 200
    assert _ids(sessions("mitra", first, view="offers")) == []
    assert _ids(sessions("mitra", second, view="offers")) == [sid]
    clock.advance(ctx.settings.pairing_timeout_seconds + 1)
    assert _ids(sessions("mitra", second, view="offers")) == []  # past its deadline, even before the sweep


def test_history_pages_newest_first_with_opaque_cursors(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    _, auth = customer(ctx)
    online_mitras(ctx, 1)
    made = []
    for _ in range(5):
        sid = api("request", auth).json["id"]
        assert api("cancel", auth, sid).status_code == 200
        made.append(sid)
        clock.advance(app_config.DEFAULTS["session_cancel_cooldown_seconds"])  # the cooldown a cancel starts

    pages, cursor = [], None
    while True:
        query = {"view": "history", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = sessions("client", auth, **query).json
        pages.append([s["id"] for s in page["sessions"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [made[4:2:-1], made[2:0:-1], made[0:1]]

    bad = sessions("client", auth, view="history", cursor="not-a-cursor")
    assert (bad.status_code, bad.json["error"]["field"]) == (400, "cursor")
    assert sessions("client", auth, view="offers").json["error"]["field"] == "view"
    assert sessions("client", auth, view="history", limit=101).json["error"]["field"] == "limit"


def test_lists_show_only_the_callers_own_sessions(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    [(_, mitra_auth), (_, other_mitra)] = online_mitras(ctx, 2, max_sessions=1)
    _, auth = customer(ctx)
    _, other = customer(ctx)
    sid = api("request", auth).json["id"]
    api("accept", mitra_auth, sid)
    assert _ids(sessions("client", other, view="open")) == []
    assert _ids(sessions("mitra", other_mitra, view="current")) == []
    assert sessions("mitra", auth, view="current").status_code == 403


def test_a_session_awaiting_payment_is_in_the_customers_open_and_the_mitras_current_list(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    [(_, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    assert api("accept", mitra_auth, sid).status_code == 200  # now pending_payment
    [opened] = sessions("client", auth, view="open").json["sessions"]
    assert (opened["id"], opened["status"]) == (sid, "pending_payment")
    [held] = sessions("mitra", mitra_auth, view="current").json["sessions"]
    assert (held["id"], held["status"]) == (sid, "pending_payment")


def test_the_offers_list_waits_until_an_offer_appears(isolated_ctx: AppContext) -> None:
    [(_, mitra)] = online_mitras(isolated_ctx, 1)
    _, cust = customer(isolated_ctx)
    got: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        got["body"] = sessions("mitra", mitra, view="offers", wait=10).json
        got["waited"] = time.monotonic() - started

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.7)
    assert thread.is_alive(), "the offers list answered before any offer existed"
    session = api("request", cust).json
    thread.join(timeout=20)
    assert [s["id"] for s in got["body"]["sessions"]] == [session["id"]]
    assert got["waited"] < 5


def test_wait_on_a_list_other_than_the_first_page_of_offers_is_a_400(isolated_ctx: AppContext) -> None:
    [(_, mitra)] = online_mitras(isolated_ctx, 1)
    for query in ({"view": "current", "wait": 5}, {"view": "offers", "wait": 26}, {"view": "offers", "wait": "x"}):
        got = sessions("mitra", mitra, **query)
        assert got.status_code == 400 and got.json["error"]["code"] == "VALIDATION_FAILED", query
