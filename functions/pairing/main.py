"""Pairing and chat-session functions: availability beacon, request, accept, lifecycle.

Thin entry points only: each parses, calls one service in shared/, and returns.
"""

import functions_framework

from shared import app_settings, config, context, devices, pairing, validate
from shared.http import ApiRequest, Reply, endpoint
from shared.pairing.service import MAX_DURATION_MINUTES, MAX_EXTEND_MINUTES, MIN_DURATION_MINUTES

context.init(required=(config.DATABASE, config.VALKEY, config.JWT_SECRET))


# ---- customers -------------------------------------------------------------------------------


@functions_framework.http
@endpoint("GET /api/client/availability", auth="customer")
def pairing_availability(req: ApiRequest) -> dict:
    return pairing.beacon(req.ctx)


@functions_framework.http
@endpoint("POST /api/client/chat-sessions", auth="customer")
def pairing_request(req: ApiRequest) -> Reply:
    minutes = validate.integer(
        req.json(), "duration_minutes", required=False, minimum=MIN_DURATION_MINUTES, maximum=MAX_DURATION_MINUTES
    )
    return Reply(pairing.request_session(req.ctx, req.principal, minutes), 201)


@functions_framework.http
@endpoint("GET /api/client/chat-sessions/:id", auth="customer")
def pairing_get(req: ApiRequest) -> dict:
    return pairing.get_session(req.ctx, req.principal, req.uuid_param())


@functions_framework.http
@endpoint("POST /api/client/chat-sessions/:id/cancel", auth="customer")
def pairing_cancel(req: ApiRequest) -> dict:
    return pairing.cancel(req.ctx, req.principal, req.uuid_param())


@functions_framework.http
@endpoint("POST /api/client/chat-sessions/:id/extend", auth="customer")
def pairing_extend(req: ApiRequest) -> dict:
    session_id = req.uuid_param()
    minutes = validate.integer(req.json(), "minutes", minimum=1, maximum=MAX_EXTEND_MINUTES) or 0
    return pairing.extend(req.ctx, req.principal, session_id, minutes)


@functions_framework.http
@endpoint("POST /api/client/chat-sessions/:id/end", auth="customer")
def pairing_end(req: ApiRequest) -> dict:
    return pairing.end_by_customer(req.ctx, req.principal, req.uuid_param())


@functions_framework.http
@endpoint("POST /api/client/chat-sessions/:id/reroute", auth="customer")
def pairing_reroute(req: ApiRequest) -> dict:
    return pairing.reroute(req.ctx, req.principal, req.uuid_param())


# ---- mitras ----------------------------------------------------------------------------------


@functions_framework.http
@endpoint("POST /api/mitra/chat-sessions/:id/accept", auth="mitra")
def pairing_mitra_accept(req: ApiRequest) -> dict:
    return pairing.accept(req.ctx, req.principal, req.uuid_param())


@functions_framework.http
@endpoint("POST /api/mitra/chat-sessions/:id/decline", auth="mitra")
def pairing_mitra_decline(req: ApiRequest) -> dict:
    return pairing.decline(req.ctx, req.principal, req.uuid_param())


@functions_framework.http
@endpoint("POST /api/mitra/chat-sessions/:id/end", auth="mitra")
def pairing_mitra_end(req: ApiRequest) -> dict:
    return pairing.end_by_mitra(req.ctx, req.principal, req.uuid_param())


@functions_framework.http
@endpoint("PUT /api/client/devices", auth="customer")
def client_devices_put(req: ApiRequest) -> dict:
    return devices.register(req.ctx, "customer", req.principal.user_id, req.json(), req.principal.session_id)


@functions_framework.http
@endpoint("DELETE /api/client/devices", auth="customer")
def client_devices_delete(req: ApiRequest) -> Reply:
    devices.unregister(req.ctx, "customer", req.principal.user_id, req.json())
    return Reply(None, 204)


@functions_framework.http
@endpoint("GET /api/client/config", auth="customer")
def client_config(req: ApiRequest) -> dict:
    return app_settings.for_app(req.ctx, "customer")
