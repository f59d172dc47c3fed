"""Mitra status routes through create_app: online, offline, heartbeat, status, devices."""

from __future__ import annotations

import logging

import pytest

from shared import availability
from shared.context import AppContext
from tests.support import apps, mirror_state
from tests.support.helpers import FakeClock
from tests.support.mirror_state import new_mitra
from tests.support.tokens import bearer, mitra_token


def _logs(ctx: AppContext, mitra: str) -> list[str]:
    rows = ctx.db.rows("SELECT event FROM mitra_status_logs WHERE mitra_id = CAST(:m AS uuid) ORDER BY id", m=mitra)
    return [r["event"] for r in rows]


def test_online_heartbeat_offline_round_trip(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    mitra = new_mitra(ctx)
    token, _ = mitra_token(ctx, mitra)
    h = bearer(token)

    online = apps.client("mitra_status_online").post("/api/mitra/status/online", headers=h)
    assert online.status_code == 200
    assert online.json == {"online": True, "used": 0, "max": 1, "last_heartbeat_at": ctx.now().isoformat()}
    assert mirror_state.actual(ctx)["available"] == {mitra}

    clock.advance(30)
    beat = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=h)
    assert beat.status_code == 200 and beat.json["online"] is True
    assert beat.json["last_heartbeat_at"] == ctx.now().isoformat()

    status = apps.client("mitra_status_get").get("/api/mitra/status", headers=h)
    assert status.json == beat.json

    offline = apps.client("mitra_status_offline").post("/api/mitra/status/offline", headers=h)
    assert offline.status_code == 200 and offline.json["online"] is False
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)
    assert _logs(ctx, mitra) == ["online", "offline"]


def test_repeated_online_logs_one_change(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    mitra = new_mitra(ctx)
    h = bearer(mitra_token(ctx, mitra)[0])
    for _ in range(3):
        assert apps.client("mitra_status_online").post("/api/mitra/status/online", headers=h).status_code == 200
    assert _logs(ctx, mitra) == ["online"]


def test_auto_offlined_mitra_is_told_to_go_online_again(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    mitra = new_mitra(ctx)
    h = bearer(mitra_token(ctx, mitra)[0])
    apps.client("mitra_status_online").post("/api/mitra/status/online", headers=h)
    availability.remove_offlined(ctx, mitra)
    beat = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=h)
    assert beat.status_code == 200 and beat.json["online"] is False


def test_deactivation_rejects_the_next_heartbeat_and_every_token_at_once(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    mitra = new_mitra(ctx)
    h = bearer(mitra_token(ctx, mitra)[0])
    apps.client("mitra_status_online").post("/api/mitra/status/online", headers=h)

    availability.deactivate(ctx, mitra, "cc:test")

    beat = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=h)
    assert beat.status_code == 403 and beat.json["error"]["code"] == "ACCOUNT_INACTIVE"
    status = apps.client("mitra_status_get").get("/api/mitra/status", headers=h)
    assert status.status_code == 403 and status.json["error"]["code"] == "ACCOUNT_INACTIVE"  # as the heartbeat
    assert mitra not in mirror_state.actual(ctx)["available"]


def test_heartbeat_with_a_revoked_session_is_401(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    mitra = new_mitra(ctx)
    token, sid = mitra_token(ctx, mitra)
    apps.client("mitra_status_online").post("/api/mitra/status/online", headers=bearer(token))
    ctx.valkey.set(ctx.keys.revoked(sid), "1", ex=60)
    beat = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=bearer(token))
    assert beat.status_code == 401 and beat.json["error"]["code"] == "SESSION_REVOKED"


def test_heartbeat_needs_a_mitra_token(isolated_ctx: AppContext) -> None:
    assert apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat").status_code == 401


def test_devices_upsert_moves_a_token_between_mitras(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    a, b = new_mitra(ctx), new_mitra(ctx)
    put = apps.client("mitra_devices_put")
    body = {"fcm_token": "tok-123", "platform": "android"}
    assert put.put("/api/mitra/devices", json=body, headers=bearer(mitra_token(ctx, a)[0])).status_code == 200
    assert put.put("/api/mitra/devices", json=body, headers=bearer(mitra_token(ctx, b)[0])).status_code == 200
    rows = ctx.db.rows("SELECT user_id FROM devices WHERE fcm_token = 'tok-123'")
    assert [str(r["user_id"]) for r in rows] == [b]

    bad = put.put(
        "/api/mitra/devices", json={"fcm_token": "x", "platform": "nokia"}, headers=bearer(mitra_token(ctx, a)[0])
    )
    assert bad.status_code == 400 and bad.json["error"]["field"] == "platform"


def test_heartbeat_bundle_imports_no_push_or_scheduler_sdk(isolated_ctx: AppContext) -> None:
    import subprocess
    import sys

    code = (
        "import runpy, sys; runpy.run_path('functions/heartbeat/main.py');"
        "print(sorted(m for m in sys.modules if m.startswith(('firebase_admin', 'google.cloud.scheduler'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_successful_heartbeat_writes_no_access_line_but_a_rejected_one_does(
    isolated_ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    mitra = new_mitra(ctx)
    h = bearer(mitra_token(ctx, mitra)[0])
    assert apps.client("mitra_status_online").post("/api/mitra/status/online", headers=h).status_code == 200
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bestie.http"):
        assert apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=h).status_code == 200
        assert apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat").status_code == 401
        assert apps.client("mitra_status_get").get("/api/mitra/status", headers=h).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "bestie.http" and r.levelno >= logging.INFO]
    assert lines == ["POST /api/mitra/status/heartbeat -> 401", "GET /api/mitra/status -> 200"]
