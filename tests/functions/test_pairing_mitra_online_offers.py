"""A mitra who comes online while a search is running is offered it (docs/pairing.md, "Late online")."""

from __future__ import annotations

from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.chat_support import sessions
from tests.support.mirror_state import new_mitra
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, mitra_token


def _offline_mitra(ctx: AppContext) -> tuple[str, dict[str, str]]:
    mitra_id = new_mitra(ctx)
    return mitra_id, bearer(mitra_token(ctx, mitra_id)[0])


def _go_online(headers: dict[str, str]) -> None:
    resp = client("mitra_status_online").post("/api/mitra/status/online", headers=headers)
    assert resp.status_code == 200, resp.json


def test_a_mitra_coming_online_during_a_search_is_offered_it_and_can_accept(isolated_ctx: AppContext) -> None:
    online_mitras(isolated_ctx, 1)
    _, cust = customer(isolated_ctx)
    session = api("request", cust).json
    late_id, late = _offline_mitra(isolated_ctx)
    assert sessions("mitra", late, view="offers").json["sessions"] == []

    _go_online(late)
    [offer] = sessions("mitra", late, view="offers").json["sessions"]
    assert offer["id"] == session["id"]
    # The offer ends with the search, not later: the deadline of the running search.
    first = api("get", cust, session["id"]).json
    assert offer["offer_expires_at"] > first["search_started_at"]
    assert api("accept", late, session["id"]).json["mitra_id"] == late_id


def test_coming_online_again_offers_nothing_twice_and_nothing_finished_or_declined(isolated_ctx: AppContext) -> None:
    [(_, first)] = online_mitras(isolated_ctx, 1)
    _, cust = customer(isolated_ctx)
    running = api("request", cust).json
    _, other = customer(isolated_ctx)
    cancelled = api("request", other).json
    assert api("cancel", other, cancelled["id"]).status_code == 200
    _, late = _offline_mitra(isolated_ctx)

    _go_online(late)
    _go_online(late)
    assert [s["id"] for s in sessions("mitra", late, view="offers").json["sessions"]] == [running["id"]]
    assert api("decline", late, running["id"]).status_code == 200
    _go_online(late)
    assert sessions("mitra", late, view="offers").json["sessions"] == []
    assert first  # the first mitra still holds its own offer


def test_a_mitra_at_capacity_coming_online_is_offered_nothing(isolated_ctx: AppContext) -> None:
    [(_, busy)] = online_mitras(isolated_ctx, 1, max_sessions=1)
    _, first = customer(isolated_ctx)
    held = api("request", first).json
    assert api("accept", busy, held["id"]).status_code == 200
    client("mitra_status_offline").post("/api/mitra/status/offline", headers=busy)
    online_mitras(isolated_ctx, 1)
    _, second = customer(isolated_ctx)
    api("request", second)
    _go_online(busy)
    assert sessions("mitra", busy, view="offers").json["sessions"] == []
