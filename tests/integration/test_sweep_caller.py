"""The sweep's caller check behind Cloud Run IAM: the forwarded token's claims, not its signature."""

import pytest

from shared.errors import ApiError
from shared.sweeps.caller import check_scheduler_claims
from tests.conftest import make_context
from tests.loopback import RsaKey, google_claims

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
    [f"{AUDIENCE}/other", f"https://evil.example/?next={AUDIENCE}", f"x{AUDIENCE}", AUDIENCE[:-1]],
    ids=["extended", "embedded", "prefixed", "truncated"],
)
def test_an_audience_that_only_contains_the_expected_one_is_rejected(sweep_ctx, audience):
    claims = google_claims(AUDIENCE, SA)
    claims["aud"] = audience
    with pytest.raises(ApiError) as err:
        check_scheduler_claims(sweep_ctx, forwarded(RsaKey().sign(claims)))
    assert err.value.status == 401
