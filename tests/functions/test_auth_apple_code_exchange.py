"""Sign in with Apple exchanges the authorization code at Apple (the loopback stand-in) and keeps
the refresh token, encrypted, so that account deletion can revoke it."""

from __future__ import annotations

import uuid

from shared.auth import apple
from tests.support import auth_support
from tests.support.auth_support import (
    APPLE_SERVICE,
    apple_body,
    apple_code,
    apple_sign_in,
    identity_providers,
    post_apple,
    sign_in_nonce,
)


def _token_row(app_ctx, customer_id: str):
    return app_ctx.db.one(
        "SELECT client_id, refresh_token_sealed FROM apple_tokens WHERE customer_id = CAST(:c AS uuid)", c=customer_id
    )


def test_apple_sign_in_exchanges_the_code_and_keeps_the_refresh_token_encrypted(providers, keys):
    app_ctx, _ = providers
    sub = uuid.uuid4().hex
    resp = apple_sign_in(keys[1], sub)
    assert resp.status_code == 200, resp.json
    stand_in = auth_support.apple_standin
    [(_path, form)] = [r for r in stand_in.requests if r[0] == "/auth/token"]
    assert form["client_id"] == APPLE_SERVICE and form["grant_type"] == "authorization_code"
    [issued] = stand_in.live_refresh_tokens(sub)
    row = _token_row(app_ctx, resp.json["user"]["id"])
    assert row["client_id"] == APPLE_SERVICE
    assert issued.encode() not in bytes(row["refresh_token_sealed"])  # never in clear
    assert apple.unseal(app_ctx, APPLE_SERVICE, row["refresh_token_sealed"]) == issued


def test_apple_sign_in_without_the_authorization_code_is_refused(providers, keys):
    body = apple_body(keys[1], uuid.uuid4().hex, sign_in_nonce())
    del body["authorization_code"]
    resp = post_apple(body)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "VALIDATION_FAILED"


def test_a_code_of_another_apple_user_is_refused_and_nothing_is_kept(providers, keys):
    app_ctx, _ = providers
    sub = uuid.uuid4().hex
    body = apple_body(keys[1], sub, sign_in_nonce())
    body["authorization_code"] = apple_code("someone-else")
    resp = post_apple(body)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "APPLE_CODE_INVALID"
    assert app_ctx.db.scalar("SELECT count(*) FROM customers WHERE apple_sub = :s", s=sub) == 0


def test_a_code_used_once_is_refused_the_second_time(providers, keys):
    sub = uuid.uuid4().hex
    code = apple_code(sub)
    assert apple_sign_in(keys[1], sub, authorization_code=code).status_code == 200
    again = apple_sign_in(keys[1], sub, authorization_code=code)
    assert again.status_code == 401 and again.json["error"]["code"] == "APPLE_CODE_INVALID"


def test_the_name_apple_gives_once_fills_the_display_name_and_never_overwrites_it(providers, keys):
    sub = uuid.uuid4().hex
    first = apple_sign_in(keys[1], sub, name="Ayu Lestari")
    assert first.status_code == 200 and first.json["user"]["display_name"] == "Ayu Lestari"
    later = apple_sign_in(keys[1], sub, name="Someone Else")
    assert later.json["user"]["display_name"] == "Ayu Lestari"


def test_the_private_relay_flag_is_kept_with_the_email(providers, keys):
    sub = uuid.uuid4().hex
    relay = f"{sub[:10]}@privaterelay.appleid.com"
    raw = sign_in_nonce()
    body = apple_body(keys[1], sub, raw, email=relay, email_verified="true", is_private_email="true")
    resp = post_apple(body)
    assert resp.status_code == 200, resp.json
    assert resp.json["user"]["email"] == relay and resp.json["user"]["email_private_relay"] is True


def test_apple_token_endpoint_down_is_502_and_no_session_opens(keys):
    with identity_providers(*keys, apple_token_url="http://127.0.0.1:1/auth/token") as (app_ctx, _):
        sub = uuid.uuid4().hex
        resp = apple_sign_in(keys[1], sub)
        assert resp.status_code == 502 and resp.json["error"]["code"] == "IDENTITY_PROVIDER_ERROR"
        assert app_ctx.db.scalar("SELECT count(*) FROM customers WHERE apple_sub = :s", s=sub) == 0


def test_apple_sign_in_without_the_client_secret_settings_is_503(keys):
    with identity_providers(*keys, apple_private_key=None):
        resp = apple_sign_in(keys[1], uuid.uuid4().hex)
        assert resp.status_code == 503 and resp.json["error"]["code"] == "PROVIDER_NOT_CONFIGURED"


def test_a_client_secret_apple_refuses_is_a_502_not_the_apps_fault(keys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with identity_providers(*keys, apple_private_key=other.decode()):
        resp = apple_sign_in(keys[1], uuid.uuid4().hex)
        assert resp.status_code == 502 and resp.json["error"]["code"] == "IDENTITY_PROVIDER_ERROR"
        assert auth_support.apple_standin.refresh_tokens == {}  # Apple issued nothing
