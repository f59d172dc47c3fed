"""The sweep's caller check behind Cloud Run IAM: the identity Cloud Run verified, its claims, and
a signature whenever Cloud Run did not vouch for one."""

import pytest

from shared.errors import ApiError
from shared.sweeps.caller import check_caller, check_scheduler_claims
from tests.conftest import make_context
from tests.support.loopback import RsaKey, StubServer, google_claims

AUDIENCE = "https://asia-southeast2-bestie-prod.cloudfunctions.net/sweep-auto-offline"
SA = "scheduler@bestie-prod.iam.gserviceaccount.com"
REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"


def forwarded(token: str) -> str:
    """The token as Cloud Run forwards it to a private service (signature replaced)."""
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{REMOVED}"


@pytest.fixture
def sweep_ctx():
    ctx = make_context(scheduler_audience=AUDIENCE, scheduler_service_account=SA, sweep_auth="oidc")
    yield ctx
    ctx.close()


def test_token_forwarded_by_cloud_run_with_its_signature_removed_is_accepted(sweep_ctx):
    claims = check_scheduler_claims(sweep_ctx, forwarded(RsaKey().sign(google_claims(AUDIENCE, SA))))
    assert claims["email"] == SA


@pytest.mark.parametrize(
    "case,expected_status",
    [
        ("wrong_audience", 401),
        ("wrong_email", 403),
        ("unverified_email", 403),
        ("expired", 401),
        ("wrong_issuer", 401),
        ("garbage", 401),
        ("not_json", 401),
    ],
)
def test_bad_claims_are_rejected(sweep_ctx, case, expected_status):
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
    elif case == "garbage":
        token = "not-a-jwt"
    elif case == "not_json":
        token = f"e30.bm90IGpzb24.{REMOVED}"
    token = token or forwarded(RsaKey().sign(claims))
    with pytest.raises(ApiError) as err:
        check_scheduler_claims(sweep_ctx, token)
    assert err.value.status == expected_status


def test_unconfigured_verification_is_a_503_not_an_open_door():
    ctx = make_context(scheduler_audience=None, sweep_auth="oidc")
    with pytest.raises(ApiError) as err:
        check_scheduler_claims(ctx, forwarded(RsaKey().sign(google_claims(AUDIENCE, SA))))
    assert err.value.status == 503


@pytest.mark.parametrize(
    "audience",
    [
        AUDIENCE + "/../sweep-session-expiry",
        "https://evil.example/?next=" + AUDIENCE,
        AUDIENCE.upper(),
        [AUDIENCE + "x"],
    ],
)
def test_an_audience_that_only_contains_the_expected_url_is_refused(sweep_ctx, audience):
    with pytest.raises(ApiError) as err:
        check_scheduler_claims(sweep_ctx, forwarded(RsaKey().sign(google_claims(AUDIENCE, SA, aud=audience))))
    assert err.value.status == 401 and err.value.code == "OIDC_INVALID"


@pytest.fixture
def google():
    """Google's signing key, its certs served on loopback, and a context that fetches them."""
    key = RsaKey()
    with StubServer() as certs:
        certs.routes["/certs"] = (200, key.certs(), 0.0)
        ctx = make_context(
            scheduler_audience=AUDIENCE,
            scheduler_service_account=SA,
            sweep_auth="oidc",
            google_certs_url=certs.url + "/certs",
        )
        yield key, ctx
        ctx.close()


def test_a_token_cloud_run_did_not_vouch_for_must_carry_googles_signature(google):
    key, ctx = google
    assert check_scheduler_claims(ctx, key.sign(google_claims(AUDIENCE, SA)))["email"] == SA
    with pytest.raises(ApiError) as err:
        check_scheduler_claims(ctx, RsaKey().sign(google_claims(AUDIENCE, SA)))  # signed by someone else
    assert err.value.status == 401 and err.value.code == "OIDC_INVALID"
    header, payload, _ = key.sign(google_claims(AUDIENCE, SA)).split(".")
    with pytest.raises(ApiError) as err:
        check_scheduler_claims(ctx, f"{header}.{payload}.AAAA")  # a signature that is not Google's marker
    assert err.value.status == 401


def test_the_identity_comes_from_x_serverless_authorization_when_both_headers_are_sent(sweep_ctx):
    scheduler = "Bearer " + forwarded(RsaKey().sign(google_claims(AUDIENCE, SA)))
    owner = "Bearer " + forwarded(RsaKey().sign(google_claims(AUDIENCE, "owner@bestie-prod.iam.gserviceaccount.com")))
    assert check_caller(sweep_ctx, scheduler, None)["email"] == SA
    assert check_caller(sweep_ctx, None, scheduler)["email"] == SA
    assert check_caller(sweep_ctx, scheduler, scheduler)["email"] == SA
    with pytest.raises(ApiError) as err:
        check_caller(sweep_ctx, owner, scheduler)  # IAM let the owner in; the forged scheduler token rides along
    assert err.value.status == 403 and err.value.code == "OIDC_WRONG_CALLER"


@pytest.mark.parametrize("authorization", ["Bearer {owner}", "Bearer not-a-token", "Basic c2NoZWR1bGVy"])
def test_two_headers_naming_different_identities_are_refused(sweep_ctx, authorization):
    scheduler = "Bearer " + forwarded(RsaKey().sign(google_claims(AUDIENCE, SA)))
    owner = forwarded(RsaKey().sign(google_claims(AUDIENCE, "owner@bestie-prod.iam.gserviceaccount.com")))
    with pytest.raises(ApiError) as err:
        check_caller(sweep_ctx, scheduler, authorization.format(owner=owner))
    assert err.value.status == 403 and err.value.code == "OIDC_IDENTITY_MISMATCH"


def test_a_request_without_either_header_is_a_401(sweep_ctx):
    with pytest.raises(ApiError) as err:
        check_caller(sweep_ctx, None, None)
    assert err.value.status == 401
