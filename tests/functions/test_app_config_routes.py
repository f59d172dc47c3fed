"""GET /api/{client,mitra}/config: the settings an app needs, read from the deployment's settings
and the app_config rows staff edit."""

from __future__ import annotations

from shared.context import AppContext
from tests.support.auth_support import anonymous, bearer, client
from tests.support.mirror_state import new_mitra
from tests.support.tokens import mitra_token


def test_the_customer_app_reads_its_timeouts_durations_and_price(isolated_ctx: AppContext):
    ctx = isolated_ctx
    headers = bearer(anonymous()["access_token"])
    resp = client("client_config").get("/api/client/config", headers=headers)
    assert resp.status_code == 200, resp.json
    s = ctx.settings
    assert resp.json == {
        "heartbeat_interval_seconds": s.mitra_heartbeat_stale_seconds // 3,
        "heartbeat_stale_seconds": s.mitra_heartbeat_stale_seconds,
        "search_timeout_seconds": s.pairing_timeout_seconds,
        "payment_timeout_seconds": s.payment_timeout_seconds,
        "session_allowed_minutes": [5, 10, 15, 20, 30, 45, 60, 90, 120],
        "session_default_minutes": 30,
        "session_max_total_minutes": 1440,
        "price_per_minute_idr": 1000,
        "chat_max_messages_per_minute": 60,
    }


def test_a_staff_edit_of_app_config_reaches_the_apps_config(isolated_ctx: AppContext):
    ctx = isolated_ctx
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO app_config (key, value) VALUES ('price_per_minute_idr', '2500'),"
            " ('session_allowed_minutes', '[15, 30]')"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        tx.commit()
    mitra = new_mitra(ctx)
    resp = client("mitra_config").get("/api/mitra/config", headers=bearer(mitra_token(ctx, mitra)[0]))
    assert resp.status_code == 200, resp.json
    assert resp.json["price_per_minute_idr"] == 2500 and resp.json["session_allowed_minutes"] == [15, 30]
    assert resp.json["mitra_max_concurrent_sessions"] == 1  # the mitra app also learns its default capacity


def test_each_config_route_is_for_its_own_app(isolated_ctx: AppContext):
    ctx = isolated_ctx
    customer = bearer(anonymous()["access_token"])
    mitra = bearer(mitra_token(ctx, new_mitra(ctx))[0])
    assert client("mitra_config").get("/api/mitra/config", headers=customer).status_code == 403
    assert client("client_config").get("/api/client/config", headers=mitra).status_code == 403
    assert client("client_config").get("/api/client/config").status_code == 401
