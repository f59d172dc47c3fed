"""PUT /api/client/devices registers a customer's push token (and moves a reused install's)."""

from shared import devices
from tests.support.tokens import bearer


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


def test_a_customer_keeps_at_most_the_cap_of_devices_and_the_oldest_goes_first(call, ctx):
    cid, headers = _customer(call)
    registered = []
    for n in range(devices.MAX_DEVICES_PER_USER + 3):
        token = f"install-{n}-{cid}"
        resp = call("client_devices_put").put(
            "/api/client/devices", json={"fcm_token": token, "platform": "android"}, headers=headers
        )
        assert resp.status_code == 200
        registered.append(token)
    kept = devices.tokens_for(ctx, "customer", [cid])[cid]
    assert sorted(kept) == sorted(registered[3:])  # the three oldest were evicted
    # Re-registering an old install refreshes it: it is now the newest, and the oldest kept one goes.
    call("client_devices_put").put(
        "/api/client/devices", json={"fcm_token": registered[0], "platform": "android"}, headers=headers
    )
    kept = devices.tokens_for(ctx, "customer", [cid])[cid]
    assert registered[0] in kept and registered[3] not in kept and len(kept) == devices.MAX_DEVICES_PER_USER


def test_an_overlong_token_is_400_naming_fcm_token(call, ctx):
    cid, headers = _customer(call)
    resp = call("client_devices_put").put(
        "/api/client/devices",
        json={"fcm_token": "x" * (devices.MAX_TOKEN_CHARS + 1), "platform": "ios"},
        headers=headers,
    )
    assert resp.status_code == 400 and resp.json["error"]["field"] == "fcm_token"
    assert devices.tokens_for(ctx, "customer", [cid]) == {}
