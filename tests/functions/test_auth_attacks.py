"""Attacks on the auth routes, from the attacker's side (issue 11, findings 4-7).

Each test states what an attacker must not be able to do, and fails on the code before the fix.
"""

from __future__ import annotations

import uuid

from shared import app_config
from shared.auth import cc_users
from tests.auth_support import bearer, client, phone, request_otp, seed_mitra

ORIGIN = "https://cc.example.test"
PASSWORD = "Secret123"


def _email() -> str:
    return f"staff-{uuid.uuid4().hex[:10]}@bestie.test"


def _login(email: str, password: str = PASSWORD, ip: str = "203.0.113.7"):
    return client("auth_cc_login").post(
        "/internal/auth/login", json={"email": email, "password": password}, headers={"X-Forwarded-For": ip}
    )


# ---- finding 6: an admin's stolen access token must not become a permanent takeover -----------


def test_admin_cannot_reset_their_own_password_without_the_current_one(ctx):
    email = _email()
    admin = cc_users.create_user(ctx, email, PASSWORD, "admin")
    token = _login(email).json["access_token"]
    resp = client("cc_users_reset_password").patch(
        f"/internal/control-center-users/{admin['id']}/password",
        json={"new_password": "Takeover123"},
        headers=bearer(token),
    )
    assert resp.status_code == 403 and resp.json["error"]["code"] == "USE_OWN_PASSWORD_ROUTE"
    assert _login(email).status_code == 200  # the password did not change
    assert _login(email, "Takeover123").status_code == 401


# ---- finding 5: one IP must not map every mitra phone number ----------------------------------


def test_mitra_phone_lookups_count_toward_the_ip_limit(isolated_ctx, clock):
    app_config.put(isolated_ctx, "otp_max_requests_per_ip_per_hour", 3, "test")
    inactive = phone()
    seed_mitra(isolated_ctx, inactive, active=False)
    attacker = "198.51.100.23"
    probes = [phone(), inactive, phone(), phone(), inactive]
    codes = [request_otp("mitra", p, attacker).json["error"]["code"] for p in probes]
    assert codes == ["MITRA_NOT_FOUND", "ACCOUNT_INACTIVE", "MITRA_NOT_FOUND", "RATE_LIMITED", "RATE_LIMITED"]
