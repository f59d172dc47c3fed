"""Cloud Scheduler OIDC verification with google-auth against keys served on loopback."""

from dataclasses import replace

import pytest

from shared.errors import ApiError
from shared.sweeps.caller import verify_scheduler_token
from tests.conftest import make_context
from tests.loopback import RsaKey, StubServer, google_claims

AUDIENCE = "https://sweeps.example.test"
SA = "scheduler@bestie-prod.iam.gserviceaccount.com"


@pytest.fixture
def key():
    return RsaKey()


@pytest.fixture
def certs(key):
    """Google's certs endpoint serving `key` and one other (Google publishes two at a time)."""
    with StubServer() as server:
        server.routes["/certs"] = (200, {**RsaKey().certs(), **key.certs()}, 0.0)
        yield server


@pytest.fixture
def sweep_ctx(certs):
    ctx = make_context(
        google_certs_url=certs.url + "/certs",
        scheduler_audience=AUDIENCE,
        scheduler_service_account=SA,
        sweep_auth="oidc",
    )
    yield ctx
    ctx.close()


def test_token_signed_by_googles_served_key_is_accepted(sweep_ctx, key, certs):
    claims = verify_scheduler_token(sweep_ctx, key.sign(google_claims(AUDIENCE, SA)))
    assert claims["email"] == SA
    assert len(certs.requests) >= 1  # the real verifier fetched the certs over HTTP


@pytest.mark.parametrize(
    "case,expected_status",
    [
        ("wrong_audience", 401),
        ("wrong_email", 403),
        ("unverified_email", 403),
        ("expired", 401),
        ("wrong_issuer", 401),
        ("unsigned", 401),
        ("unknown_key", 401),
        ("garbage", 401),
    ],
)
def test_bad_tokens_are_rejected(sweep_ctx, key, case, expected_status):
    import jwt

    claims = google_claims(AUDIENCE, SA)
    token = None
    if case == "wrong_audience":
        claims["aud"] = "https://elsewhere.example"
    elif case == "wrong_email":
        claims["email"] = "attacker@evil.iam.gserviceaccount.com"
    elif case == "unverified_email":
        claims["email_verified"] = False
    elif case == "expired":
        claims["iat"], claims["exp"] = claims["iat"] - 7200, claims["iat"] - 3600
    elif case == "wrong_issuer":
        claims["iss"] = "https://evil.example"
    elif case == "unsigned":
        token = jwt.encode(claims, None, algorithm="none", headers={"kid": key.kid})
    elif case == "unknown_key":
        impostor = RsaKey()
        impostor.kid = key.kid  # same kid, different key
        token = impostor.sign(claims)
    elif case == "garbage":
        token = "not.a.jwt"
    token = token or key.sign(claims)
    with pytest.raises(ApiError) as err:
        verify_scheduler_token(sweep_ctx, token)
    assert err.value.status == expected_status


def test_unconfigured_verification_is_a_503_not_an_open_door(key, certs):
    ctx = make_context(google_certs_url=certs.url + "/certs", scheduler_audience=None, sweep_auth="oidc")
    with pytest.raises(ApiError) as err:
        verify_scheduler_token(ctx, key.sign(google_claims(AUDIENCE, SA)))
    assert err.value.status == 503


def test_unreachable_certs_endpoint_is_a_503(sweep_ctx, key):
    from infra.embedded import free_port

    ctx = type(sweep_ctx)(replace(sweep_ctx.settings, google_certs_url=f"http://127.0.0.1:{free_port()}/certs"))
    with pytest.raises(ApiError) as err:
        verify_scheduler_token(ctx, key.sign(google_claims(AUDIENCE, SA)))
    assert err.value.status == 503
