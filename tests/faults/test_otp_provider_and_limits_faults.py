"""OTP faults: the Fazpass provider failing or hanging (a loopback stand-in, real HTTP client
code), and rate limits enforced from Postgres while Valkey is down."""

from __future__ import annotations

import dataclasses
import json

import pytest

from shared import context
from shared.context import AppContext
from tests.conftest import make_context
from tests.support.auth_support import StubServer, ip, phone, request_otp


@pytest.fixture
def fazpass():
    server = StubServer().start()
    try:
        yield server
    finally:
        server.stop()


def _fazpass_ctx(server: StubServer, **overrides) -> AppContext:
    app_ctx = make_context(
        otp_provider="fazpass",
        fazpass_base_url=server.url,
        fazpass_merchant_key="merchant-key",
        fazpass_gateway_key="gateway-key",
        fazpass_timeout_seconds=0.3,
        **overrides,
    )
    context.install(app_ctx)
    return app_ctx


def test_fazpass_2xx_sends_our_code_and_stores_the_reference(fazpass):
    fazpass.routes["/v1/otp/send"] = (200, {"status": True, "data": {"id": "fz-123"}}, 0.0)
    app_ctx = _fazpass_ctx(fazpass)
    try:
        number = phone()
        resp = request_otp("customer", number)
        assert resp.status_code == 201
        sent = fazpass.requests[-1]
        assert sent["headers"]["Authorization"] == "Bearer merchant-key"
        body = json.loads(sent["body"])
        assert body["phone"] == number.lstrip("+") and body["gateway_key"] == "gateway-key"
        assert len(body["otp"]) == 6 and body["otp"].isdigit()
        ref = app_ctx.db.scalar(
            "SELECT provider_ref FROM otp_requests WHERE id = CAST(:i AS uuid)", i=resp.json["request_id"]
        )
        assert ref == "fz-123"
    finally:
        context.install(None)
        app_ctx.close()


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ((500, {"status": False}, 0.0), "5xx"),
        ((401, {"message": "bad key"}, 0.0), "4xx"),
        ((200, {"status": False, "message": "quota"}, 0.0), "status false"),
        ((200, {}, 1.5), "slow"),
    ],
)
def test_fazpass_failure_is_502_and_leaves_no_usable_code(fazpass, answer, label):
    fazpass.routes["/v1/otp/send"] = answer
    app_ctx = _fazpass_ctx(fazpass)
    try:
        number = phone()
        resp = request_otp("customer", number)
        assert resp.status_code == 502, label
        assert resp.json["error"]["code"] == "OTP_PROVIDER_ERROR"
        assert app_ctx.db.scalar("SELECT count(*) FROM otp_requests WHERE phone_e164 = :p", p=number) == 0
        # no cooldown is left behind by a code that never arrived
        fazpass.routes["/v1/otp/send"] = (200, {"status": True, "data": {"id": "ok"}}, 0.0)
        assert request_otp("customer", number).status_code == 201
    finally:
        context.install(None)
        app_ctx.close()


def test_limits_hold_from_postgres_while_valkey_is_down(isolated_ctx, clock, own_valkey):
    with isolated_ctx.db.transaction() as tx:
        tx.execute("UPDATE app_config SET value = '2' WHERE key = 'otp_max_requests_per_ip_per_hour'")
        tx.commit()
    down = AppContext(dataclasses.replace(isolated_ctx.settings, valkey_url=own_valkey.url), clock=clock)
    own_valkey.stop()
    context.install(down)
    try:
        address = ip()
        statuses = [request_otp("customer", phone(), client_ip=address).status_code for _ in range(3)]
        assert statuses == [201, 201, 429]
        assert down.db.scalar("SELECT count(*) FROM rate_limit_hits WHERE bucket = 'otp_ip'") == 2
        clock.advance(3601)
        assert request_otp("customer", phone(), client_ip=address).status_code == 201
    finally:
        context.install(None)
        down.close()
