"""Apple's server-to-server notifications: verified with Apple's keys, acted on, idempotent."""

from __future__ import annotations

import uuid

import pytest

from tests.support import auth_support
from tests.support.auth_support import (
    APPLE_SERVICE,
    apple_sign_in,
    bearer,
    client,
    otp_sign_in,
    phone,
    refresh,
)


def _notify(body):
    return client("apple_notifications").post("/api/apple/notifications", json=body)


def _event(event_type, sub, **extra):
    return auth_support.apple_standin.notification(APPLE_SERVICE, event_type, sub, **extra)


def _customer(app_ctx, customer_id):
    return app_ctx.db.one("SELECT * FROM customers WHERE id = CAST(:c AS uuid)", c=customer_id)


def test_consent_revoked_ends_every_session_and_unlinks_apple(providers, keys):
    app_ctx, _ = providers
    sub = uuid.uuid4().hex
    first = apple_sign_in(keys[1], sub).json
    number = phone()
    linked = otp_sign_in("customer", number, bearer(first["access_token"])).json
    second = apple_sign_in(keys[1], sub).json
    assert second["user"]["id"] == first["user"]["id"]

    resp = _notify(_event("consent-revoked", sub))
    assert resp.status_code == 200, resp.json

    for pair in (linked, second):
        assert refresh(pair["refresh_token"]).status_code == 401
        me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 401
    row = _customer(app_ctx, first["user"]["id"])
    assert row["apple_sub"] is None and row["deleted_at"] is None and row["phone_e164"] is not None
    assert app_ctx.db.scalar("SELECT count(*) FROM apple_tokens WHERE customer_id = :c", c=row["id"]) == 0
    assert row["phone_e164"] == number  # the phone still signs in to the same account
    assert _notify(_event("consent-revoked", sub)).status_code == 200  # delivered twice: nothing more happens


def test_consent_revoked_for_an_apple_only_account_deletes_it(providers, keys):
    app_ctx, _ = providers
    sub = uuid.uuid4().hex
    signed = apple_sign_in(keys[1], sub, name="Citra").json
    assert _notify(_event("consent-revoked", sub)).status_code == 200
    row = _customer(app_ctx, signed["user"]["id"])
    assert row["deleted_at"] is not None and row["display_name"] == "Deleted user"
    assert refresh(signed["refresh_token"]).status_code == 401


def test_account_delete_deletes_the_account(providers, keys):
    app_ctx, _ = providers
    sub = uuid.uuid4().hex
    signed = apple_sign_in(keys[1], sub).json
    linked = otp_sign_in("customer", phone(), bearer(signed["access_token"])).json
    assert _notify(_event("account-delete", sub)).status_code == 200
    row = _customer(app_ctx, signed["user"]["id"])
    assert row["deleted_at"] is not None and row["phone_e164"] is None and row["apple_sub"] is None
    assert refresh(linked["refresh_token"]).status_code == 401
    assert _notify(_event("account-delete", sub)).status_code == 200  # idempotent


def test_email_events_update_the_stored_email_state(providers, keys):
    sub = uuid.uuid4().hex
    relay = f"{sub[:10]}@privaterelay.appleid.com"
    signed = apple_sign_in(keys[1], sub)
    assert signed.status_code == 200
    headers = bearer(signed.json["access_token"])
    assert _notify(_event("email-enabled", sub, email=relay, is_private_email="true")).status_code == 200
    me = client("auth_client_me").get("/api/client/auth/me", headers=headers).json
    assert me["email"] == relay and me["email_private_relay"] is True and me["email_forwarding"] is True
    for _ in range(2):  # delivered twice, same state
        assert _notify(_event("email-disabled", sub, email=relay, is_private_email="true")).status_code == 200
        assert client("auth_client_me").get("/api/client/auth/me", headers=headers).json["email_forwarding"] is False
    assert _notify(_event("email-enabled", sub, email=relay, is_private_email="true")).status_code == 200
    assert client("auth_client_me").get("/api/client/auth/me", headers=headers).json["email_forwarding"] is True


def test_a_notification_not_signed_by_apple_changes_nothing(providers, keys):
    sub = uuid.uuid4().hex
    signed = apple_sign_in(keys[1], sub).json
    forger = auth_support.AppleStandIn()  # its own key, unknown to Apple's JWKS
    resp = _notify(forger.notification(APPLE_SERVICE, "consent-revoked", sub))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "NOTIFICATION_INVALID"
    wrong_audience = _notify(auth_support.apple_standin.notification("com.other.app", "account-delete", sub))
    assert wrong_audience.status_code == 401 and wrong_audience.json["error"]["code"] == "NOTIFICATION_INVALID"
    assert refresh(signed["refresh_token"]).status_code == 200  # the session lives on


@pytest.mark.parametrize("body", [{}, {"payload": 5}, {"payload": "not.a.jws"}])
def test_a_malformed_notification_is_a_4xx(providers, body):
    resp = _notify(body)
    expected = (400, "VALIDATION_FAILED") if body.get("payload") in (None, 5) else (401, "NOTIFICATION_INVALID")
    assert (resp.status_code, resp.json["error"]["code"]) == expected


def test_an_email_event_without_an_email_keeps_the_stored_one(providers, keys):
    sub = uuid.uuid4().hex
    signed = apple_sign_in(keys[1], sub).json
    relay = f"{sub[:10]}@privaterelay.appleid.com"
    assert _notify(_event("email-enabled", sub, email=relay, is_private_email="true")).status_code == 200
    assert _notify(_event("email-disabled", sub)).status_code == 200
    me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(signed["access_token"])).json
    assert me["email"] == relay and me["email_private_relay"] is True and me["email_forwarding"] is False


def test_a_consent_revoked_older_than_the_last_apple_sign_in_is_ignored(providers, keys):
    sub = uuid.uuid4().hex
    stale = _event("consent-revoked", sub, event_time=1_000_000_000_000)  # captured long ago, replayed now
    signed = apple_sign_in(keys[1], sub).json  # the user authorized the app again since
    resp = _notify(stale)
    assert resp.status_code == 200 and resp.json == {"type": "consent-revoked", "applied": False}
    assert refresh(signed["refresh_token"]).status_code == 200
