"""Linking replaces the bearer's session: the old (anonymous) tokens stop, the new pair works."""

from __future__ import annotations

import uuid

import pytest

from tests.support.auth_support import (
    GOOGLE_CLIENT,
    anonymous,
    apple_sign_in,
    bearer,
    client,
    otp_sign_in,
    phone,
    refresh,
)


def _link_google(keys, headers):
    token = keys[0].sign({"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": uuid.uuid4().hex})
    return client("auth_client_google").post("/api/client/auth/google", json={"id_token": token}, headers=headers)


LINKS = {
    "google": _link_google,
    "apple": lambda keys, headers: apple_sign_in(keys[1], uuid.uuid4().hex, headers),
    "phone": lambda keys, headers: otp_sign_in("customer", phone(), headers),
}


@pytest.mark.parametrize("kind", sorted(LINKS))
def test_linking_ends_the_anonymous_session_and_hands_over_a_new_pair(providers, keys, kind):
    anon = anonymous()
    linked = LINKS[kind](keys, bearer(anon["access_token"]))
    assert linked.status_code == 200, linked.json
    assert linked.json["user"]["id"] == anon["user"]["id"] and linked.json["user"]["is_anonymous"] is False

    old_refresh = refresh(anon["refresh_token"])
    assert old_refresh.status_code == 401 and old_refresh.json["error"]["code"] == "SESSION_REVOKED"
    old_access = client("auth_client_me").get("/api/client/auth/me", headers=bearer(anon["access_token"]))
    assert old_access.status_code == 401

    me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(linked.json["access_token"]))
    assert me.status_code == 200 and me.json["linked"][kind] is True
    assert refresh(linked.json["refresh_token"]).status_code == 200


def test_a_refused_link_leaves_the_anonymous_session_alive(providers, keys):
    taken = apple_sign_in(keys[1], sub := uuid.uuid4().hex)
    assert taken.status_code == 200
    anon = anonymous()
    refused = apple_sign_in(keys[1], sub, bearer(anon["access_token"]))
    assert refused.status_code == 409
    assert refresh(anon["refresh_token"]).status_code == 200
