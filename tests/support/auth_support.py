"""Helpers for the auth tests: apps, sign-ins, and loopback stand-ins for Google, Apple and Fazpass."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from infra.apple_standin import AppleStandIn
from shared.auth.identity import nonce_hash
from shared.context import AppContext
from tests.conftest import make_context
from tests.support.apps import client, fresh_app
from tests.support.helpers import installed
from tests.support.loopback import RsaKey, StubServer
from tests.support.tokens import bearer

# Re-exported: the auth tests import them from here (each is defined once, in the module named).
__all__ = ["AppleStandIn", "RsaKey", "StubServer", "bearer", "client", "fresh_app"]


GOOGLE_CLIENT = "client-1.apps.googleusercontent.com"
APPLE_SERVICE = "id.bestie.web"
APPLE_ISSUER = "https://appleid.apple.com"
GOOGLE_CERTS = "/oauth2/v1/certs"
APPLE_KEYS = "/auth/keys"
# Apple's auth/token and auth/revoke for the context `identity_providers` installed (None outside it).
apple_standin: AppleStandIn | None = None


@contextmanager
def identity_providers(
    google: RsaKey, apple: RsaKey, clock: Callable[..., Any] | None = None, **settings: Any
) -> Iterator[tuple[AppContext, StubServer]]:
    """Google's certs and Apple's keys served on loopback, and an installed context that trusts
    them (any other setting overridden); yields the context and the stub server."""
    global apple_standin
    server = StubServer().start()
    server.routes[GOOGLE_CERTS] = (200, google.certs(), 0.0)
    server.routes[APPLE_KEYS] = (200, apple.jwks(), 0.0)
    stand_in = AppleStandIn(signing_key=apple.private, signing_kid=apple.kid).start()
    apple_settings = {name.lower(): value for name, value in stand_in.settings().items() if name != "APPLE_JWKS_URL"}
    try:
        app_ctx = make_context(
            clock,
            **{
                "google_oauth_client_ids": (GOOGLE_CLIENT,),
                "google_certs_url": server.url + GOOGLE_CERTS,
                "apple_services_id": APPLE_SERVICE,
                "apple_jwks_url": server.url + APPLE_KEYS,
                "apple_token_encryption_key": base64.b64encode(os.urandom(32)).decode(),
                **apple_settings,
                **settings,
            },
        )
        apple_standin = stand_in
        with installed(app_ctx):
            yield app_ctx, server
    finally:
        apple_standin = None
        stand_in.stop()
        server.stop()


def phone() -> str:
    return f"+62812{uuid.uuid4().int % 10**8:08d}"


def ip() -> str:
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


def anonymous(headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = client("auth_anonymous").post(
        "/api/shared/auth/anonymous", headers={"X-Forwarded-For": ip(), **(headers or {})}
    )
    assert resp.status_code == 201, resp.json
    return resp.json


def refresh(token: str) -> Any:
    return client("auth_refresh").post("/api/shared/auth/refresh", json={"refresh_token": token})


def seed_mitra(ctx: Any, phone_e164: str, *, active: bool = True) -> str:
    with ctx.db.transaction() as tx:
        mitra_id = tx.scalar(
            "INSERT INTO mitras (phone_e164, display_name, is_active) VALUES (:p, 'Mitra', :a) RETURNING id",
            p=phone_e164,
            a=active,
        )
        tx.commit()
    return str(mitra_id)


def request_otp(flow: str, phone_text: str, client_ip: str | None = None, app: Any = None) -> Any:
    path = "/api/client/auth/otp/request" if flow == "customer" else "/api/mitra/auth/otp/request"
    entry = "auth_client_otp_request" if flow == "customer" else "auth_mitra_otp_request"
    return (app or client(entry)).post(path, json={"phone": phone_text}, headers={"X-Forwarded-For": client_ip or ip()})


def last_code(phone_e164: str) -> str:
    resp = client("test_last_otp").get("/internal/_test/last-otp", query_string={"phone": phone_e164})
    assert resp.status_code == 200, resp.json
    return str(resp.json["code"])


def verify_otp(flow: str, request_id: str, code: str, headers: dict[str, str] | None = None) -> Any:
    path = "/api/client/auth/otp/verify" if flow == "customer" else "/api/mitra/auth/otp/verify"
    entry = "auth_client_otp_verify" if flow == "customer" else "auth_mitra_otp_verify"
    return client(entry).post(path, json={"request_id": request_id, "code": code}, headers=headers or {})


def otp_sign_in(flow: str, phone_text: str, headers: dict[str, str] | None = None) -> Any:
    resp = request_otp(flow, phone_text)
    assert resp.status_code == 201, resp.json
    e164 = resp.json.get("phone") or _e164(phone_text)
    return verify_otp(flow, resp.json["request_id"], last_code(e164), headers)


def _e164(text: str) -> str:
    from shared import phones

    return phones.normalize(text)


def sign_in_nonce(headers: dict[str, str] | None = None) -> str:
    """A server nonce, asked the way an app does before it starts a provider's sign-in."""
    resp = client("auth_nonce").post("/api/shared/auth/nonce", headers=headers or {})
    assert resp.status_code == 201, resp.json
    return str(resp.json["nonce"])


def apple_token(key: RsaKey, sub: str, raw_nonce: str | None = None, **claims: Any) -> str:
    """An id_token shaped like Apple's for the Services id, carrying sha256(raw nonce) when given."""
    base = {"iss": APPLE_ISSUER, "aud": APPLE_SERVICE, "sub": sub}
    if raw_nonce is not None:
        base["nonce"] = nonce_hash(raw_nonce)
    return key.sign({**base, **claims})


def post_apple(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return client("auth_client_apple").post("/api/client/auth/apple", json=body, headers=headers or {})


def apple_code(sub: str, client_id: str = APPLE_SERVICE) -> str:
    """The authorization code Apple's sheet gives the app with the id_token (from the stand-in)."""
    assert apple_standin is not None, "inside identity_providers only"
    return apple_standin.issue_code(sub, client_id)


def apple_body(key: RsaKey, sub: str, raw_nonce: str | None, **claims: Any) -> dict[str, Any]:
    """What the app posts after Apple's sheet: the id_token (carrying the nonce), the nonce, the code."""
    body = {"id_token": apple_token(key, sub, raw_nonce, **claims), "authorization_code": apple_code(sub)}
    return body if raw_nonce is None else {**body, "nonce": raw_nonce}


def apple_sign_in(key: RsaKey, sub: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
    """Sign in with Apple as the app does: a server nonce first, then the token that carries it
    and the authorization code that came with it."""
    raw = sign_in_nonce(headers)
    sent = {"id_token": apple_token(key, sub, raw), "nonce": raw, "authorization_code": apple_code(sub), **body}
    return post_apple(sent, headers)
