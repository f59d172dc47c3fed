"""`make dev` without Apple credentials: Sign in with Apple runs end to end against the loopback
stand-in of Apple's API, driven over HTTP the way a developer would with curl."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import fields

import requests

from infra import dev
from shared.config import Settings
from tests.conftest import make_context
from tests.support.auth_support import client, sign_in_nonce
from tests.support.helpers import installed


def test_make_dev_serves_a_whole_apple_sign_in_and_deletion_through_the_standin(monkeypatch):
    for name in ("APPLE_TEAM_ID", "APPLE_SERVICES_ID", "APPLE_TOKEN_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    stand_in = dev.start_apple_standin()
    assert stand_in is not None
    try:
        settings = Settings.from_env()
        apple = {f.name: getattr(settings, f.name) for f in fields(Settings) if f.name.startswith("apple_")}
        with installed(make_context(**apple)):
            raw = sign_in_nonce()
            authorized = requests.post(
                stand_in.url + "/_dev/authorize",
                json={"client_id": settings.apple_services_id, "nonce_hash": hashlib.sha256(raw.encode()).hexdigest()},
                timeout=5,
            ).json()
            body = {
                "id_token": authorized["id_token"],
                "nonce": raw,
                "authorization_code": authorized["authorization_code"],
            }
            signed = client("auth_client_apple").post("/api/client/auth/apple", json=body)
            assert signed.status_code == 200, signed.json
            assert stand_in.live_refresh_tokens(authorized["sub"])
            headers = {"Authorization": f"Bearer {signed.json['access_token']}"}
            assert client("auth_client_delete").delete("/api/client/auth/me", headers=headers).status_code == 204
            assert stand_in.live_refresh_tokens(authorized["sub"]) == []
    finally:
        stand_in.stop()
        os.environ.clear()
        os.environ.update(before)


def test_make_dev_leaves_real_apple_credentials_alone(monkeypatch):
    monkeypatch.setenv("APPLE_TEAM_ID", f"T{uuid.uuid4().hex[:9]}")
    assert dev.start_apple_standin() is None
