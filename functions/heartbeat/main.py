"""Mitra status functions: online, offline, heartbeat, status, devices (register, delete), config.

Thin entry points only: each parses, calls one service in shared/, and returns. This
bundle imports neither firebase_admin nor google.cloud.scheduler.
"""

import functions_framework

from shared import app_settings, availability, config, context, devices
from shared.http import ApiRequest, Reply, endpoint
from shared.sessions import online

context.init(required=(config.DATABASE, config.VALKEY, config.JWT_SECRET))


def _actor(req: ApiRequest) -> str:
    return f"mitra:{req.principal.user_id}"


@functions_framework.http
@endpoint("POST /api/mitra/status/online", auth="mitra")
def mitra_status_online(req: ApiRequest) -> dict:
    return online.go_online(req.ctx, req.principal.user_id, _actor(req))


@functions_framework.http
@endpoint("POST /api/mitra/status/offline", auth="mitra")
def mitra_status_offline(req: ApiRequest) -> dict:
    return availability.set_offline(req.ctx, req.principal.user_id, _actor(req))


@functions_framework.http
@endpoint("POST /api/mitra/status/heartbeat", auth="mitra")
def mitra_status_heartbeat(req: ApiRequest) -> dict:
    # The manifest sets revocation_check = "handler": the one heartbeat script checks it.
    return availability.heartbeat(req.ctx, req.principal)


@functions_framework.http
@endpoint("GET /api/mitra/status", auth="mitra")
def mitra_status_get(req: ApiRequest) -> dict:
    return availability.mitra_status(req.ctx, req.principal.user_id)


@functions_framework.http
@endpoint("PUT /api/mitra/devices", auth="mitra")
def mitra_devices_put(req: ApiRequest) -> dict:
    return devices.register(req.ctx, "mitra", req.principal.user_id, req.json(), req.principal.session_id)


@functions_framework.http
@endpoint("DELETE /api/mitra/devices", auth="mitra")
def mitra_devices_delete(req: ApiRequest) -> Reply:
    devices.unregister(req.ctx, "mitra", req.principal.user_id, req.json())
    return Reply(None, 204)


@functions_framework.http
@endpoint("GET /api/mitra/config", auth="mitra")
def mitra_config(req: ApiRequest) -> dict:
    return app_settings.for_app(req.ctx, "mitra")
