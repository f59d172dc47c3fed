"""Secrets never reach the logs: passwords, refresh and access tokens, bearer headers.

Every record emitted while staff log in (right and wrong password), refresh, call an
authenticated route with a revoked token, and customers sign in and refresh, is formatted
with the production JSON formatter and searched for the secret strings.
"""

from __future__ import annotations

import logging
import uuid

from shared.auth import cc_users
from shared.log import JsonFormatter
from tests.support.auth_support import anonymous, client, refresh


def test_no_secret_appears_in_any_log_line(ctx, caplog):
    caplog.set_level(logging.DEBUG)
    password, wrong = "Sup3rSecretPw", "Wr0ngButSecret"
    email = f"staff-{uuid.uuid4().hex[:10]}@bestie.test"
    cc_users.create_user(ctx, email, password, "operator")
    origin = {"Origin": ctx.settings.cc_origin}

    bad = client("auth_cc_login").post("/internal/auth/login", json={"email": email, "password": wrong}, headers=origin)
    login = client("auth_cc_login").post(
        "/internal/auth/login", json={"email": email, "password": password}, headers=origin
    )
    staff_token = login.json["access_token"]
    me = client("auth_cc_me").get("/internal/auth/me", headers={"Authorization": f"Bearer {staff_token}"})
    customer = anonymous()
    rotated = refresh(customer["refresh_token"])
    replay = refresh(customer["refresh_token"] + "x")  # an unknown token is logged as nothing but a 401
    logout = client("auth_logout").post(
        "/api/shared/auth/logout", headers={"Authorization": f"Bearer {rotated.json['access_token']}"}
    )
    after = client("auth_client_me").get(
        "/api/client/auth/me", headers={"Authorization": f"Bearer {rotated.json['access_token']}"}
    )
    assert (bad.status_code, login.status_code, me.status_code) == (401, 200, 200)
    assert (rotated.status_code, replay.status_code, logout.status_code, after.status_code) == (200, 401, 204, 401)

    lines = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert len(caplog.records) >= 8  # the access log of every request above was captured
    secrets = [
        password,
        wrong,
        staff_token,
        customer["access_token"],
        customer["refresh_token"],
        rotated.json["access_token"],
        rotated.json["refresh_token"],
    ]
    for secret in secrets:
        assert secret not in lines
    assert "Bearer ey" not in lines
