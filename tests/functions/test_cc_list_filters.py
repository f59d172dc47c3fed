"""Control-center list filters: customers by block state, anonymity and creation time; names in
the staff session list; the dashboard's session counts over a date range (docs/control-center.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.context import AppContext
from tests.support import apps
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_token

DAY = datetime(2026, 11, 1, tzinfo=UTC)


def _customer(ctx: AppContext, name: str, *, anonymous: bool, blocked: bool, days: int) -> str:
    with ctx.db.transaction() as tx:
        customer_id = str(
            tx.scalar(
                "INSERT INTO customers (display_name, is_anonymous, created_at, blocked_at)"
                " VALUES (:n, :a, :at, CASE WHEN :b THEN CAST(:at AS timestamptz) END) RETURNING id",
                n=name,
                a=anonymous,
                at=DAY + timedelta(days=days),
                b=blocked,
            )
        )
        tx.commit()
    return customer_id


def _ids(resp: Any, key: str) -> list[str]:
    assert resp.status_code == 200, resp.json
    return [item["id"] for item in resp.json[key]]


def test_customers_are_filtered_by_blocked_anonymous_and_created_range(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    guest = _customer(ctx, "Guest", anonymous=True, blocked=False, days=0)
    ayu = _customer(ctx, "Ayu", anonymous=False, blocked=False, days=1)
    bad = _customer(ctx, "Budi", anonymous=False, blocked=True, days=2)
    bad_guest = _customer(ctx, "Ghost", anonymous=True, blocked=True, days=3)
    h = bearer(cc_token(ctx, "operator"))
    listing = apps.client("customers_list")

    def ids(**query: str) -> list[str]:
        return _ids(listing.get("/internal/customers", query_string=query, headers=h), "customers")

    assert ids() == [bad_guest, bad, ayu, guest]
    assert ids(blocked="true") == [bad_guest, bad]
    assert ids(blocked="false") == [ayu, guest]
    assert ids(anonymous="true") == [bad_guest, guest]
    assert ids(anonymous="false", blocked="false") == [ayu]
    assert ids(created_from="2026-11-02T00:00:00Z") == [bad_guest, bad, ayu]  # inclusive
    assert ids(created_to="2026-11-02T00:00:00Z") == [guest]  # exclusive
    assert ids(created_from="2026-11-02T00:00:00Z", created_to="2026-11-04T00:00:00Z", blocked="true") == [bad]
    assert ids(search="bud", blocked="true") == [bad] and ids(search="bud", blocked="false") == []
    first = listing.get("/internal/customers", query_string={"blocked": "true", "limit": "1"}, headers=h).json
    rest = listing.get(
        "/internal/customers", query_string={"blocked": "true", "limit": "1", "cursor": first["next_cursor"]}, headers=h
    )
    assert [c["id"] for c in first["customers"]] + _ids(rest, "customers") == [bad_guest, bad]
    for query, field in (
        ({"blocked": "yes"}, "blocked"),
        ({"anonymous": "1"}, "anonymous"),
        ({"created_from": "2026-11-02"}, "created_from"),
        ({"created_to": "soon"}, "created_to"),
        ({"created_from": "2026-11-03T00:00:00Z", "created_to": "2026-11-02T00:00:00Z"}, "created_to"),
    ):
        refused = listing.get("/internal/customers", query_string=query, headers=h)
        assert refused.status_code == 400 and refused.json["error"]["code"] == "VALIDATION_FAILED"
        assert refused.json["error"]["field"] == field, query


def test_the_staff_session_list_and_view_show_both_parties_names(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    [(mitra_id, mitra_auth)] = online_mitras(ctx, 1, max_sessions=2)
    customer_id, auth = customer(ctx)
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE mitras SET display_name = 'Mitra Sekar' WHERE id = CAST(:m AS uuid)", m=mitra_id)
        tx.execute("UPDATE customers SET display_name = 'Rina' WHERE id = CAST(:c AS uuid)", c=customer_id)
        tx.commit()
    searching_customer, searching_auth = customer(ctx)
    accepted = api("request", auth).json["id"]
    assert api("accept", mitra_auth, accepted).status_code == 200
    searching = api("request", searching_auth).json["id"]
    h = bearer(cc_token(ctx, "operator"))
    listed = apps.client("chat_sessions_list").get("/internal/chat-sessions", headers=h)
    assert listed.status_code == 200
    names = {s["id"]: (s["customer_name"], s["mitra_name"]) for s in listed.json["chat_sessions"]}
    assert names == {accepted: ("Rina", "Mitra Sekar"), searching: ("c", None)}  # no mitra yet: no name
    view = apps.client("chat_sessions_get").get(f"/internal/chat-sessions/{accepted}", headers=h).json
    assert (view["customer_name"], view["mitra_name"]) == ("Rina", "Mitra Sekar")
    assert searching_customer != customer_id


def test_the_dashboard_counts_sessions_requested_within_a_date_range(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    online_mitras(ctx, 1)
    start = clock()
    first_customer = customer(ctx)[1]
    requested = api("request", first_customer)
    assert requested.status_code == 201, requested.json
    old = requested.json["id"]
    api("cancel", first_customer, old)
    clock.advance(3600)
    [(_, mitra_auth)] = online_mitras(ctx, 1)  # fresh heartbeat and token an hour later
    recent = api("request", customer(ctx)[1]).json["id"]
    assert api("accept", mitra_auth, recent).status_code == 200
    h = bearer(cc_token(ctx, "operator"))
    board = apps.client("dashboard")

    def sessions(**query: str) -> dict[str, int]:
        resp = board.get("/internal/dashboard", query_string=query, headers=h)
        assert resp.status_code == 200, resp.json
        return {k: v for k, v in resp.json["sessions"].items() if v}

    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731 (a tiny formatter)
    assert sessions() == {"cancelled": 1, "pending_payment": 1}
    assert sessions(**{"from": iso(start + timedelta(seconds=1))}) == {"pending_payment": 1}
    assert sessions(to=iso(start + timedelta(seconds=1))) == {"cancelled": 1}
    assert sessions(**{"from": iso(start), "to": iso(start)}) == {}  # empty half-open range
    ranged = board.get("/internal/dashboard", query_string={"from": iso(start)}, headers=h).json
    assert ranged["from"] == start.isoformat() and ranged["to"] is None and ranged["online"] >= 1
    for query, field in (
        ({"from": "last week"}, "from"),
        ({"to": "2026-11-01T00:00:00"}, "to"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
    ):
        bad = board.get("/internal/dashboard", query_string=query, headers=h)
        assert bad.status_code == 400 and bad.json["error"]["code"] == "VALIDATION_FAILED"
        assert bad.json["error"]["field"] == field, query
