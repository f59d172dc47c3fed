"""Control-center functions and the health check (thin entry points; logic in shared/)."""

import functions_framework

from shared import context, health, mitras, phones, validate
from shared.http import ApiRequest, Reply, endpoint

context.init()


@functions_framework.http
@endpoint
def healthz(req: ApiRequest) -> Reply:
    healthy, report = health.check(req.ctx)
    return Reply(report, 200 if healthy else 503)


@functions_framework.http
@endpoint
def test_seed_mitra(req: ApiRequest) -> Reply:
    body = req.json()
    phone = phones.normalize(validate.string(body, "phone", max_len=32) or "")
    name = validate.string(body, "display_name", max_len=80) or ""
    mitra, created = mitras.seed_mitra(req.ctx, phone, name)
    return Reply(mitra, 201 if created else 200)


@functions_framework.http
@endpoint
def payment_confirmed(req: ApiRequest) -> dict:
    from shared import pairing  # only this entry point needs the pairing package

    return pairing.confirm_payment(req.ctx, req.principal, validate.uuid_value(req.params["id"], "id"))
