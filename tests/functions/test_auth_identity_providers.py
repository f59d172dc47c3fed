"""Google and Apple sign-in, verified for real (google-auth, pyjwt) against keys served on loopback."""

from __future__ import annotations

import uuid

import jwt
import pytest

from shared.auth.identity import nonce_hash
from tests.support.auth_support import (
    APPLE_KEYS,
    APPLE_SERVICE,
    GOOGLE_CERTS,
    GOOGLE_CLIENT,
    RsaKey,
    anonymous,
    apple_code,
    apple_sign_in,
    bearer,
    client,
    sign_in_nonce,
)


def _google_token(key: RsaKey, sub: str, **overrides) -> str:
    claims = {
        "iss": "https://accounts.google.com",
        "aud": GOOGLE_CLIENT,
        "sub": sub,
        "email": f"{sub}@gmail.test",
        "email_verified": True,
    }
    return key.sign(claims, **overrides)


def _apple_token(key: RsaKey, sub: str, **overrides) -> str:
    return key.sign({"iss": "https://appleid.apple.com", "aud": APPLE_SERVICE, "sub": sub}, **overrides)


def _google(token: str, headers=None):
    return client("auth_client_google").post("/api/client/auth/google", json={"id_token": token}, headers=headers or {})


def _apple(body: dict, headers=None):
    sub = jwt.decode(body["id_token"], options={"verify_signature": False})["sub"]
    sent = {"authorization_code": apple_code(sub), **body}
    return client("auth_client_apple").post("/api/client/auth/apple", json=sent, headers=headers or {})


def test_google_sign_in_creates_then_finds_the_customer(providers, keys):
    sub = uuid.uuid4().hex
    first = _google(_google_token(keys[0], sub))
    assert first.status_code == 200, first.json
    assert first.json["user"]["linked"]["google"] is True and first.json["user"]["email"] == f"{sub}@gmail.test"
    again = _google(_google_token(keys[0], sub))
    assert again.json["user"]["id"] == first.json["user"]["id"]


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "someone-else"}, {"iss": "https://evil.test"}, {"exp": 1_000_000}],
    ids=["wrong audience", "wrong issuer", "expired"],
)
def test_bad_google_tokens_are_401(providers, keys, overrides):
    resp = _google(_google_token(keys[0], uuid.uuid4().hex, **overrides))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "ID_TOKEN_INVALID"


def test_google_token_signed_by_another_key_is_401(providers, keys):
    resp = _google(_google_token(keys[1], uuid.uuid4().hex))  # apple's key, unknown kid for google
    assert resp.status_code == 401


def test_google_certs_unreachable_is_502(providers, keys):
    _, server = providers
    server.routes[GOOGLE_CERTS] = (500, {}, 0.0)
    resp = _google(_google_token(keys[0], uuid.uuid4().hex))
    assert resp.status_code == 502 and resp.json["error"]["code"] == "IDENTITY_PROVIDER_ERROR"


def test_anonymous_bearer_is_upgraded_by_google(providers, keys):
    anon = anonymous()
    resp = _google(_google_token(keys[0], uuid.uuid4().hex), headers=bearer(anon["access_token"]))
    assert resp.status_code == 200
    assert resp.json["user"]["id"] == anon["user"]["id"] and resp.json["user"]["is_anonymous"] is False


def test_google_identity_of_another_customer_is_conflict_and_both_stay_unchanged(providers, keys):
    app_ctx, _ = providers
    sub = uuid.uuid4().hex
    owner = _google(_google_token(keys[0], sub)).json
    anon = anonymous()
    ids = {"a": owner["user"]["id"], "b": anon["user"]["id"]}
    sql = "SELECT * FROM customers WHERE id IN (CAST(:a AS uuid), CAST(:b AS uuid)) ORDER BY id"
    before = app_ctx.db.rows(sql, **ids)
    resp = _google(_google_token(keys[0], sub), headers=bearer(anon["access_token"]))
    assert resp.status_code == 409 and resp.json["error"]["code"] == "IDENTITY_TAKEN"
    assert app_ctx.db.rows(sql, **ids) == before


def test_apple_sign_in_with_matching_nonce(providers, keys):
    raw = sign_in_nonce()
    resp = _apple({"id_token": _apple_token(keys[1], uuid.uuid4().hex, nonce=nonce_hash(raw)), "nonce": raw})
    assert resp.status_code == 200 and resp.json["user"]["linked"]["apple"] is True


def test_apple_nonce_mismatch_is_401(providers, keys):
    raw = sign_in_nonce()
    resp = _apple({"id_token": _apple_token(keys[1], uuid.uuid4().hex, nonce=nonce_hash("other")), "nonce": raw})
    assert resp.status_code == 401 and resp.json["error"]["code"] == "NONCE_MISMATCH"


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "com.other"}, {"iss": "https://evil.test"}, {"exp": 1_000_000}],
    ids=["wrong audience", "wrong issuer", "expired"],
)
def test_bad_apple_tokens_are_401(providers, keys, overrides):
    raw = sign_in_nonce()
    resp = _apple(
        {"id_token": _apple_token(keys[1], uuid.uuid4().hex, nonce=nonce_hash(raw), **overrides), "nonce": raw}
    )
    assert resp.status_code == 401 and resp.json["error"]["code"] == "ID_TOKEN_INVALID"


def test_apple_jwks_unreachable_is_502(providers, keys):
    _, server = providers
    server.routes[APPLE_KEYS] = (503, {}, 0.0)
    resp = apple_sign_in(keys[1], uuid.uuid4().hex)
    assert resp.status_code == 502 and resp.json["error"]["code"] == "IDENTITY_PROVIDER_ERROR"


def test_apple_identity_conflict(providers, keys):
    sub = uuid.uuid4().hex
    assert apple_sign_in(keys[1], sub).status_code == 200
    anon = anonymous()
    resp = apple_sign_in(keys[1], sub, bearer(anon["access_token"]))
    assert resp.status_code == 409 and resp.json["error"]["code"] == "IDENTITY_TAKEN"
