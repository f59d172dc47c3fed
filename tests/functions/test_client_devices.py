"""PUT /api/client/devices registers a customer's push token (and moves a reused install's)."""

from shared import devices
from tests.tokens import bearer


def _customer(call):
    body = call("auth_anonymous").post("/api/shared/auth/anonymous").json
    return body["user"]["id"], bearer(body["access_token"])


def test_customer_registers_a_device_token(call, ctx):
    cid, headers = _customer(call)
    resp = call("client_devices_put").put(
        "/api/client/devices", json={"fcm_token": f"tok-{cid}", "platform": "ios"}, headers=headers
    )
    assert resp.status_code == 200 and resp.json["registered"] is True and resp.json["platform"] == "ios"
    assert devices.tokens_for(ctx, "customer", [cid]) == {cid: [f"tok-{cid}"]}


def test_a_token_reused_by_another_account_moves_to_it(call, ctx):
    first, h1 = _customer(call)
    second, h2 = _customer(call)
    token = {"fcm_token": f"shared-install-{first}", "platform": "android"}
    call("client_devices_put").put("/api/client/devices", json=token, headers=h1)
    call("client_devices_put").put("/api/client/devices", json=token, headers=h2)
    assert devices.tokens_for(ctx, "customer", [first, second]) == {second: [token["fcm_token"]]}


def test_bad_platform_is_named_and_mitra_tokens_are_refused(call, ctx):
    _, headers = _customer(call)
    bad = call("client_devices_put").put(
        "/api/client/devices", json={"fcm_token": "t", "platform": "symbian"}, headers=headers
    )
    assert bad.status_code == 400 and bad.json["error"]["field"] == "platform"
    assert call("client_devices_put").put("/api/client/devices", json={}).status_code == 401
