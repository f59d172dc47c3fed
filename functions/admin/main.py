"""Control-center functions and the health check (thin entry points; logic in shared/).

Mitra management and the dashboard admit every control-center user (auth "cc": admins and
operators run the day-to-day roster); changing app_config needs an admin ("cc_admin").
"""

import functions_framework

from shared import app_config, availability, context, health, mitras, pairing, phones, validate
from shared.http import ApiRequest, Reply, endpoint

context.init()

PAGE_MAX = 200


def _actor(req: ApiRequest) -> str:
    return f"cc:{req.principal.user_id}"


def _new_mitra(body: dict) -> tuple[str, str]:
    phone = phones.normalize(validate.string(body, "phone", max_len=32) or "")
    return phone, validate.string(body, "display_name", max_len=mitras.NAME_MAX) or ""


def _query_int(req: ApiRequest, name: str, default: int | None, maximum: int | None = None) -> int | None:
    return req.query_int(name, minimum=1, maximum=maximum, default=default)


@functions_framework.http
@endpoint
def healthz(req: ApiRequest) -> Reply:
    healthy, report = health.check(req.ctx)
    return Reply(report, 200 if healthy else 503)


@functions_framework.http
@endpoint
def test_seed_mitra(req: ApiRequest) -> Reply:
    mitra, created = mitras.seed_mitra(req.ctx, *_new_mitra(req.json()))
    return Reply(mitra, 201 if created else 200)


@functions_framework.http
@endpoint
def mitras_create(req: ApiRequest) -> Reply:
    body = req.json()
    phone, name = _new_mitra(body)
    return Reply(availability.create_mitra(req.ctx, phone, name, mitras.parse_max_sessions(body), _actor(req)), 201)


@functions_framework.http
@endpoint
def mitras_list(req: ApiRequest) -> dict:
    return availability.list_mitras(req.ctx, _query_int(req, "limit", 50, PAGE_MAX) or 50, req.query("cursor"))


@functions_framework.http
@endpoint
def mitras_patch(req: ApiRequest) -> dict:
    mitra_id = req.uuid_param()
    return availability.edit_mitra(req.ctx, mitra_id, mitras.parse_edit(req.json()), _actor(req))


@functions_framework.http
@endpoint
def mitras_deactivate(req: ApiRequest) -> dict:
    return availability.deactivate(req.ctx, req.uuid_param(), _actor(req))


@functions_framework.http
@endpoint
def mitras_activate(req: ApiRequest) -> dict:
    return availability.activate(req.ctx, req.uuid_param(), _actor(req))


@functions_framework.http
@endpoint
def mitras_logs(req: ApiRequest) -> dict:
    mitra_id = req.uuid_param()
    limit = _query_int(req, "limit", 50, PAGE_MAX) or 50
    return mitras.logs(req.ctx, mitra_id, limit, _query_int(req, "before", None))


@functions_framework.http
@endpoint
def dashboard(req: ApiRequest) -> dict:
    return availability.dashboard(req.ctx)


@functions_framework.http
@endpoint
def app_config_get(req: ApiRequest) -> dict:
    return app_config.read(req.ctx, req.params["key"])


@functions_framework.http
@endpoint
def app_config_put(req: ApiRequest) -> dict:
    key = app_config.require_key(req.params["key"])
    body = req.json()
    if "value" not in body:
        validate.integer(body, "value")
    return availability.set_app_config(req.ctx, key, body["value"], _actor(req))


@functions_framework.http
@endpoint
def payment_confirmed(req: ApiRequest) -> dict:
    return pairing.confirm_payment(req.ctx, req.principal, req.uuid_param())
