"""Helpers for the auth tests: apps, sign-ins, and loopback stand-ins for Google, Apple and Fazpass."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from shared.auth.identity import nonce_hash
from shared.context import AppContext
from tests.apps import client, fresh_app
from tests.conftest import make_context
from tests.helpers import installed
from tests.loopback import RsaKey, StubServer
from tests.tokens import bearer

# Re-exported: the auth tests import them from here (each is defined once, in the module named).
__all__ = ["RsaKey", "StubServer", "bearer", "client", "fresh_app"]


GOOGLE_CLIENT = "client-1.apps.googleusercontent.com"
APPLE_SERVICE = "id.bestie.web"
APPLE_ISSUER = "https://appleid.apple.com"
GOOGLE_CERTS = "/oauth2/v1/certs"
APPLE_KEYS = "/auth/keys"


@contextmanager
def identity_providers(
    google: RsaKey, apple: RsaKey, clock: Callable[..., Any] | None = None, **settings: Any
) -> Iterator[tuple[AppContext, StubServer]]:
    """Google's certs and Apple's keys served on loopback, and an installed context that trusts
    them (any other setting overridden); yields the context and the stub server."""
    server = StubServer().start()
    server.routes[GOOGLE_CERTS] = (200, google.certs(), 0.0)
    server.routes[APPLE_KEYS] = (200, apple.jwks(), 0.0)
    try:
        app_ctx = make_context(
            clock,
            google_oauth_client_ids=(GOOGLE_CLIENT,),
            google_certs_url=server.url + GOOGLE_CERTS,
            apple_services_id=APPLE_SERVICE,
            apple_jwks_url=server.url + APPLE_KEYS,
            **settings,
        )
        with installed(app_ctx):
            yield app_ctx, server
    finally:
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


def apple_sign_in(key: RsaKey, sub: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
    """Sign in with Apple as the app does: a server nonce first, then the token that carries it."""
    raw = sign_in_nonce(headers)
    return post_apple({"id_token": apple_token(key, sub, raw), "nonce": raw, **body}, headers)
