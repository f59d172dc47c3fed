"""The verifiers under the providers' faults and quirks: rotated Apple keys, slow or failing
Google certs, skewed clocks, Google's JWK (v3) certs URL. Every path answers 401 or 502."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.auth_support import (
    APPLE_KEYS,
    GOOGLE_CERTS,
    GOOGLE_CLIENT,
    RsaKey,
    apple_body,
    apple_sign_in,
    client,
    identity_providers,
    post_apple,
    sign_in_nonce,
)
from tests.support.helpers import FakeClock


@pytest.fixture(scope="module")
def keys():
    return RsaKey(), RsaKey()  # google, apple


@pytest.fixture
def clock():
    return FakeClock()


def _google(key: RsaKey, **claims):
    token = key.sign({"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": uuid.uuid4().hex, **claims})
    return client("auth_client_google").post(
        "/api/client/auth/google", json={"id_token": token}, headers={"X-Forwarded-For": "192.0.2.40"}
    )


def test_an_apple_key_that_apple_removed_is_no_longer_trusted(keys):
    google, old = keys
    with identity_providers(google, old) as (app_ctx, server):
        assert apple_sign_in(old, uuid.uuid4().hex).status_code == 200
        server.routes[APPLE_KEYS] = (200, RsaKey().jwks(), 0.0)  # Apple rotated: the old kid is gone
        app_ctx.singleton("apple.jwks", lambda: None).jwk_set_cache.put(None)  # its hour is over
        resp = apple_sign_in(old, uuid.uuid4().hex)
        assert resp.status_code == 401 and resp.json["error"]["code"] == "ID_TOKEN_INVALID"


def test_slow_google_certs_give_up_within_seconds_with_502(keys):
    with identity_providers(*keys) as (_, server):
        server.routes[GOOGLE_CERTS] = (200, keys[0].certs(), 8.0)  # answers after 8 s
        resp = _google(keys[0])
        assert resp.status_code == 502 and resp.json["error"]["code"] == "IDENTITY_PROVIDER_ERROR"


def test_expired_google_certs_are_served_stale_for_a_while_when_google_fails(keys, clock):
    with identity_providers(*keys, clock=clock) as (_, server):
        server.headers[GOOGLE_CERTS] = {"Cache-Control": "public, max-age=60"}
        assert _google(keys[0]).status_code == 200
        server.routes[GOOGLE_CERTS] = (503, {}, 0.0)
        clock.advance(120)  # the certs expired a minute ago and Google answers 503
        assert _google(keys[0]).status_code == 200
        clock.advance(24 * 3600)  # far past the bounded staleness
        resp = _google(keys[0])
        assert resp.status_code == 502 and resp.json["error"]["code"] == "IDENTITY_PROVIDER_ERROR"


@pytest.mark.parametrize("provider", ["google", "apple"])
def test_a_token_issued_a_few_seconds_ahead_of_our_clock_is_accepted(keys, provider):
    ahead = int(time.time()) + 3
    with identity_providers(*keys):
        if provider == "google":
            resp = _google(keys[0], iat=ahead)
        else:
            resp = post_apple(apple_body(keys[1], uuid.uuid4().hex, sign_in_nonce(), iat=ahead))
        assert resp.status_code == 200, resp.json


@pytest.mark.parametrize(
    "case",
    ["expired", "unknown kid", "garbage signature"],
)
def test_google_jwk_v3_certs_url_errors_are_401_never_500(keys, case):
    google, _ = keys
    with identity_providers(*keys) as (_, server):
        server.routes[GOOGLE_CERTS] = (200, google.jwks(), 0.0)  # the JWK Set format of .../oauth2/v3/certs
        assert _google(google).status_code == 200
        if case == "expired":
            resp = _google(google, iat=1_000_000, exp=1_000_600)
        elif case == "unknown kid":
            resp = _google(RsaKey())
        else:
            head, body, _sig = _google_token_parts(google)
            resp = client("auth_client_google").post(
                "/api/client/auth/google",
                json={"id_token": f"{head}.{body}.AAAA"},
                headers={"X-Forwarded-For": "192.0.2.41"},
            )
        assert resp.status_code == 401 and resp.json["error"]["code"] == "ID_TOKEN_INVALID"


def _google_token_parts(key: RsaKey) -> list[str]:
    return key.sign({"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": "x"}).split(".")
