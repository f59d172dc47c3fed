"""Control-center mitra routes, dashboard and app-config through create_app."""

from __future__ import annotations

import uuid

from shared import availability
from shared.context import AppContext
from tests.support import apps, mirror_state
from tests.support.mirror_state import new_mitra, open_session
from tests.support.tokens import bearer, cc_token, mitra_token


def _phone() -> str:
    return f"+62813{uuid.uuid4().int % 10**8:08d}"


def test_create_list_patch_and_logs(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    h = bearer(cc_token(ctx, "operator"))
    created = apps.client("mitras_create").post(
        "/internal/mitras", json={"phone": "0813" + _phone()[6:], "display_name": "Sari"}, headers=h
    )
    assert created.status_code == 201 and created.json["is_active"] and not created.json["is_online"]
    mitra = created.json["id"]
    dup = apps.client("mitras_create").post(
        "/internal/mitras", json={"phone": created.json["phone"], "display_name": "X"}, headers=h
    )
    assert dup.status_code == 409 and dup.json["error"]["code"] == "PHONE_TAKEN"

    others = [new_mitra(ctx) for _ in range(3)]
    availability.set_online(ctx, others[0], "test")
    page1 = apps.client("mitras_list").get("/internal/mitras?limit=2", headers=h)
    assert page1.status_code == 200 and len(page1.json["mitras"]) == 2 and page1.json["live_source"] == "mirror"
    page2 = apps.client("mitras_list").get(f"/internal/mitras?limit=5&cursor={page1.json['next_cursor']}", headers=h)
    listed = {m["id"]: m for m in page1.json["mitras"] + page2.json["mitras"]}
    assert set(listed) == {mitra, *others} and page2.json["next_cursor"] is None
    assert listed[others[0]]["live"]["online"] and listed[others[0]]["live"]["available"]

    patched = apps.client("mitras_patch").patch(
        f"/internal/mitras/{mitra}", json={"display_name": "Sari W", "max_concurrent_sessions": 3}, headers=h
    )
    assert patched.status_code == 200 and patched.json["max_concurrent_sessions"] == 3
    assert mirror_state.actual(ctx)["max"] == {mitra: 3}
    bad = apps.client("mitras_patch").patch(
        f"/internal/mitras/{mitra}", json={"max_concurrent_sessions": -1}, headers=h
    )
    assert bad.status_code == 400 and bad.json["error"]["field"] == "max_concurrent_sessions"

    apps.client("mitras_deactivate").post(f"/internal/mitras/{mitra}/deactivate", headers=h)
    apps.client("mitras_activate").post(f"/internal/mitras/{mitra}/activate", headers=h)
    logs = apps.client("mitras_logs").get(f"/internal/mitras/{mitra}/logs?limit=2", headers=h)
    assert [entry["event"] for entry in logs.json["logs"]] == ["activated", "deactivated"]
    older = apps.client("mitras_logs").get(
        f"/internal/mitras/{mitra}/logs?before={logs.json['next_before']}", headers=h
    )
    assert [entry["event"] for entry in older.json["logs"]] == ["edited"]
    assert older.json["logs"][0]["detail"]["max_concurrent_sessions"] == {"from": None, "to": 3}


def test_deactivate_route_revokes_the_mitras_tokens(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    mitra = new_mitra(ctx)
    mh = bearer(mitra_token(ctx, mitra)[0])
    apps.client("mitras_deactivate").post(f"/internal/mitras/{mitra}/deactivate", headers=bearer(cc_token(ctx)))
    refused = apps.client("mitra_status_online").post("/api/mitra/status/online", headers=mh)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "ACCOUNT_INACTIVE"  # docs/auth.md


def test_unknown_mitra_and_bad_ids(isolated_ctx: AppContext) -> None:
    h = bearer(cc_token(isolated_ctx))
    assert (
        apps.client("mitras_deactivate").post(f"/internal/mitras/{uuid.uuid4()}/deactivate", headers=h).status_code
        == 404
    )
    bad = apps.client("mitras_activate").post("/internal/mitras/not-a-uuid/activate", headers=h)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "id"
    assert apps.client("mitras_list").get("/internal/mitras?limit=abc", headers=h).status_code == 400
    assert apps.client("mitras_list").get("/internal/mitras?cursor=%%%", headers=h).status_code == 400


def test_mitra_tokens_cannot_use_control_center_routes(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    mh = bearer(mitra_token(ctx, new_mitra(ctx))[0])
    assert apps.client("dashboard").get("/internal/dashboard", headers=mh).status_code == 403


def test_dashboard_counts(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    a, b, c = new_mitra(ctx), new_mitra(ctx), new_mitra(ctx)
    availability.set_online(ctx, a, "t")
    availability.set_online(ctx, b, "t")
    availability.deactivate(ctx, c, "t")
    open_session(ctx, b)
    availability.recompute_capacity(ctx, b)
    body = apps.client("dashboard").get("/internal/dashboard", headers=bearer(cc_token(ctx, "operator"))).json
    assert (body["online"], body["available"], body["deactivated"]) == (2, 1, 1)
    assert body["sessions"]["active"] == 1 and body["sessions"]["searching"] == 0


def test_app_config_get_put_validates_and_moves_availability(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "t")
    open_session(ctx, m)
    availability.recompute_capacity(ctx, m)
    assert mirror_state.actual(ctx)["available"] == set()

    admin, operator = bearer(cc_token(ctx, "admin")), bearer(cc_token(ctx, "operator"))
    path = "/internal/app-config/mitra_max_concurrent_sessions"
    assert apps.client("app_config_get").get(path, headers=operator).json["value"] == 1
    assert apps.client("app_config_put").put(path, json={"value": 2}, headers=operator).status_code == 403
    bad = apps.client("app_config_put").put(path, json={"value": "two"}, headers=admin)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "value"
    assert apps.client("app_config_put").put(path, json={"value": 101}, headers=admin).status_code == 400
    ok = apps.client("app_config_put").put(path, json={"value": 2}, headers=admin)
    assert ok.status_code == 200 and ok.json["value"] == 2
    assert mirror_state.actual(ctx)["available"] == {m}
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)
    missing = apps.client("app_config_get").get("/internal/app-config/nope", headers=operator)
    assert missing.status_code == 404


def test_deactivating_an_online_mitra_logs_that_it_was_online(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    online, offline = new_mitra(ctx), new_mitra(ctx)
    availability.set_online(ctx, online, "t")
    h = bearer(cc_token(ctx))
    for mitra in (online, offline):
        assert (
            apps.client("mitras_deactivate").post(f"/internal/mitras/{mitra}/deactivate", headers=h).status_code == 200
        )
    detail = {
        str(r["mitra_id"]): r["detail"]
        for r in ctx.db.rows("SELECT mitra_id, detail FROM mitra_status_logs WHERE event = 'deactivated'")
    }
    assert detail == {online: {"was_online": True}, offline: {"was_online": False}}
    assert ctx.db.scalar("SELECT count(*) FROM mitras WHERE is_online") == 0
