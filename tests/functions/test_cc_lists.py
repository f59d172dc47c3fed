"""Control-center lists and views: mitras (search, status, one), chat sessions (filters, trail),
seed-mitra options, and the audit rows of the older control-center changes."""

from __future__ import annotations

import uuid
from typing import Any

from shared import app_config, availability
from shared.context import AppContext
from tests.support import apps, mirror_state
from tests.support.helpers import FakeClock
from tests.support.mirror_state import new_mitra
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_token, mitra_token


def _ids(resp: Any, key: str) -> list[str]:
    assert resp.status_code == 200, resp.json
    return [item["id"] for item in resp.json[key]]


def _seed(body: dict[str, Any]) -> Any:
    return apps.client("test_seed_mitra").post("/internal/_test/seed-mitra", json=body)


def test_mitras_are_searched_by_name_and_phone_and_filtered_by_status(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    online = _seed({"phone": "081300000001", "display_name": "Dewi Lestari"}).json["id"]
    offline = _seed({"phone": "081300000002", "display_name": "Dewa"}).json["id"]
    gone = _seed({"phone": "081300000003", "display_name": "Agus", "is_active": False}).json["id"]
    availability.set_online(ctx, online, "t")
    h = bearer(cc_token(ctx, "operator"))
    listing = apps.client("mitras_list")

    def ids(**query: str) -> list[str]:
        return _ids(listing.get("/internal/mitras", query_string=query, headers=h), "mitras")

    assert ids(status="online") == [online]
    assert ids(status="offline") == [offline]
    assert ids(status="deactivated") == [gone]
    assert ids(search="dew") == [offline, online]
    assert ids(search="dew", status="online") == [online]
    assert ids(search="0813 0000 0003") == [gone]
    assert ids(search="+6281300000002") == [offline]
    assert ids(search="nobody") == []
    first = listing.get("/internal/mitras", query_string={"limit": "2"}, headers=h).json
    rest = listing.get("/internal/mitras", query_string={"limit": "2", "cursor": first["next_cursor"]}, headers=h).json
    assert [m["id"] for m in first["mitras"] + rest["mitras"]] == [gone, offline, online]
    bad = listing.get("/internal/mitras", query_string={"status": "busy"}, headers=h)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "status"

    one = apps.client("mitras_get").get(f"/internal/mitras/{online}", headers=h)
    assert one.status_code == 200 and one.json["display_name"] == "Dewi Lestari"
    assert one.json["live"]["online"] and one.json["live"]["available"] and one.json["live_source"] == "mirror"
    assert apps.client("mitras_get").get(f"/internal/mitras/{gone}", headers=h).json["live"]["deactivated"] is True
    missing = apps.client("mitras_get").get(f"/internal/mitras/{uuid.uuid4()}", headers=h)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "MITRA_NOT_FOUND"
    assert apps.client("mitras_get").get("/internal/mitras/xyz", headers=h).json["error"]["field"] == "id"
    mitra_auth = bearer(mitra_token(ctx, online)[0])
    assert apps.client("mitras_get").get(f"/internal/mitras/{online}", headers=mitra_auth).status_code == 403


def test_seed_mitra_takes_an_optional_name_and_active_flag(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    plain = _seed({"phone": "081399990001"})
    assert plain.status_code == 201 and plain.json["display_name"] == "Mitra 0001" and plain.json["is_active"] is True
    inactive = _seed({"phone": "081399990002", "display_name": "Off", "is_active": False})
    assert inactive.status_code == 201 and inactive.json["is_active"] is False
    assert inactive.json["id"] in mirror_state.actual(ctx)["deactivated"]
    again = _seed({"phone": "+6281399990002", "is_active": True})
    assert again.status_code == 200 and again.json == inactive.json  # idempotent: returned unchanged
    assert _seed({"phone": "081399990003", "is_active": "no"}).json["error"]["field"] == "is_active"
    assert _seed({"phone": "081399990003", "display_name": 5}).json["error"]["field"] == "display_name"


def test_chat_sessions_are_listed_with_filters_and_viewed_with_their_trail(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    (m1, m1_auth), (m2, m2_auth) = online_mitras(ctx, 2, max_sessions=5)
    c1, auth1 = customer(ctx)
    c2, auth2 = customer(ctx)
    s1 = api("request", auth1).json["id"]
    assert api("accept", m1_auth, s1).status_code == 200
    clock.advance(1)
    s2 = api("request", auth2).json["id"]
    api("cancel", auth2, s2)
    clock.advance(app_config.DEFAULTS["session_cancel_cooldown_seconds"])  # the cooldown a cancel starts
    s3 = api("request", auth2).json["id"]
    assert api("accept", m2_auth, s3).status_code == 200
    api("end", auth2, s3)
    h = bearer(cc_token(ctx, "operator"))
    listing = apps.client("chat_sessions_list")

    def ids(**query: str) -> list[str]:
        return _ids(listing.get("/internal/chat-sessions", query_string=query, headers=h), "chat_sessions")

    assert ids() == [s3, s2, s1]
    assert ids(customer_id=c2) == [s3, s2]
    assert ids(mitra_id=m1) == [s1]
    assert ids(status="cancelled") == [s2]
    assert ids(customer_id=c2, status="ended", mitra_id=m2) == [s3]
    assert ids(customer_id=c1, status="ended") == []
    page = listing.get("/internal/chat-sessions", query_string={"limit": "2"}, headers=h).json
    assert page["chat_sessions"][0]["offered_count"] == 2
    rest = listing.get("/internal/chat-sessions", query_string={"limit": "2", "cursor": page["next_cursor"]}, headers=h)
    assert _ids(rest, "chat_sessions") == [s1] and rest.json["next_cursor"] is None
    for query, field in (
        ({"status": "open"}, "status"),
        ({"mitra_id": "x"}, "mitra_id"),
        ({"customer_id": "1"}, "customer_id"),
    ):
        bad = listing.get("/internal/chat-sessions", query_string=query, headers=h)
        assert bad.status_code == 400 and bad.json["error"]["field"] == field

    view = apps.client("chat_sessions_get").get(f"/internal/chat-sessions/{s3}", headers=h)
    assert view.status_code == 200
    assert [e["type"] for e in view.json["events"]] == ["requested", "offered", "accepted", "ended"]
    assert view.json["events"][-1]["actor"] == f"customer:{c2}"
    assert {o["mitra_id"]: o["response"] for o in view.json["offers"]} == {m2: "accepted", m1: "lost"}
    missing = apps.client("chat_sessions_get").get(f"/internal/chat-sessions/{uuid.uuid4()}", headers=h)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "SESSION_NOT_FOUND"
    assert apps.client("chat_sessions_get").get(f"/internal/chat-sessions/{s1}", headers=auth1).status_code == 403
    assert listing.get("/internal/chat-sessions", headers=m1_auth).status_code == 403
    assert listing.get("/internal/chat-sessions").status_code == 401

    detail = apps.client("customers_get").get(f"/internal/customers/{c2}", headers=h).json
    assert detail["session_counts"] == {"cancelled": 1, "ended": 1} and detail["open_session"] is None
    assert apps.client("customers_get").get(f"/internal/customers/{c1}", headers=h).json["open_session"]["id"] == s1


def test_every_older_control_center_change_writes_an_audit_row_with_its_actor(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    admin_token = cc_token(ctx, "admin")
    admin = bearer(admin_token)
    admin_id = str(ctx.db.scalar("SELECT id FROM control_center_users"))
    created = apps.client("mitras_create").post(
        "/internal/mitras", json={"phone": "081377770001", "display_name": "Ayu"}, headers=admin
    )
    mitra = created.json["id"]
    apps.client("mitras_patch").patch(f"/internal/mitras/{mitra}", json={"display_name": "Ayu W"}, headers=admin)
    apps.client("mitras_deactivate").post(f"/internal/mitras/{mitra}/deactivate", headers=admin)
    apps.client("mitras_activate").post(f"/internal/mitras/{mitra}/activate", headers=admin)
    apps.client("app_config_put").put("/internal/app-config/session_default_minutes", json={"value": 45}, headers=admin)
    user = (
        apps.client("cc_users_create")
        .post(
            "/internal/control-center-users", json={"email": "op@bestie.test", "password": "Passw0rdOk"}, headers=admin
        )
        .json["id"]
    )
    reset = apps.client("cc_users_reset_password").patch(
        f"/internal/control-center-users/{user}/password", json={"new_password": "Passw0rdNew"}, headers=admin
    )
    assert reset.status_code == 200
    failed = apps.client("mitras_patch").patch(f"/internal/mitras/{mitra}", json={}, headers=admin)
    assert failed.status_code == 400

    rows = ctx.db.rows("SELECT actor, action, target_type, target_id, detail FROM cc_audit_log ORDER BY id")
    assert {r["actor"] for r in rows} == {f"cc:{admin_id}"}
    assert [(r["action"], r["target_id"]) for r in rows] == [
        ("mitra.create", mitra),
        ("mitra.edit", mitra),
        ("mitra.deactivate", mitra),
        ("mitra.activate", mitra),
        ("app_config.put", "session_default_minutes"),
        ("cc_user.create", user),
        ("cc_user.password_reset", user),
    ]
    assert rows[1]["detail"] == {"display_name": "Ayu W"} and rows[4]["detail"] == {"value": 45}
    assert new_mitra(ctx)  # the audit log holds no row for changes made outside the control center
    assert ctx.db.scalar("SELECT count(*) FROM cc_audit_log") == len(rows)
