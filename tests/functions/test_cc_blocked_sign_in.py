"""A blocked customer cannot sign in with Google or Apple either (403 ACCOUNT_BLOCKED)."""

from __future__ import annotations

import uuid

import pytest

from shared.context import AppContext
from tests.support import apps
from tests.support.auth_support import GOOGLE_CLIENT, RsaKey, apple_sign_in, client, identity_providers
from tests.support.tokens import bearer, cc_token


@pytest.fixture(scope="module")
def keys() -> tuple[RsaKey, RsaKey]:
    return RsaKey(), RsaKey()  # google, apple


@pytest.fixture
def providers(keys: tuple[RsaKey, RsaKey]):
    with identity_providers(*keys) as (app_ctx, _server):
        yield app_ctx


def _google(key: RsaKey, sub: str):
    claims = {"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": sub, "email_verified": True}
    return client("auth_client_google").post("/api/client/auth/google", json={"id_token": key.sign(claims)})


@pytest.mark.parametrize("provider", ["google", "apple"])
def test_a_blocked_customer_cannot_sign_in_with_an_identity_provider(
    providers: AppContext, keys: tuple[RsaKey, RsaKey], provider: str
) -> None:
    sign_in = (lambda sub: _google(keys[0], sub)) if provider == "google" else (lambda sub: apple_sign_in(keys[1], sub))
    sub = uuid.uuid4().hex
    first = sign_in(sub)
    assert first.status_code == 200, first.json
    customer_id = first.json["user"]["id"]
    h = bearer(cc_token(providers, "operator"))
    assert apps.client("customers_block").post(f"/internal/customers/{customer_id}/block", headers=h).status_code == 200

    refused = sign_in(sub)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "ACCOUNT_BLOCKED"
    sessions = providers.db.scalar(
        "SELECT count(*) FROM auth_sessions WHERE user_id = CAST(:c AS uuid) AND revoked_at IS NULL", c=customer_id
    )
    assert sessions == 0  # the refused sign-in opened no session

    apps.client("customers_unblock").post(f"/internal/customers/{customer_id}/unblock", headers=h)
    assert sign_in(sub).status_code == 200
