"""Lockouts are kept in Postgres: losing Valkey's data (FLUSHALL, a failover to an empty
replica) must not let a locked-out guesser straight back in."""

from __future__ import annotations

import uuid

from shared import app_config
from shared.auth import cc_users
from shared.context import AppContext
from tests.support.auth_support import bearer, client

PASSWORD = "Secret123"


def _login(email: str, password: str, ip: str):
    return client("auth_cc_login").post(
        "/internal/auth/login", json={"email": email, "password": password}, headers={"X-Forwarded-For": ip}
    )


def _staff(ctx: AppContext) -> str:
    email = f"staff-{uuid.uuid4().hex[:10]}@bestie.test"
    cc_users.create_user(ctx, email, PASSWORD, "operator")
    return email


def test_an_ip_locked_out_of_an_email_stays_locked_out_after_flushall(isolated_ctx: AppContext) -> None:
    email = _staff(isolated_ctx)
    allowed = app_config.get(isolated_ctx, "cc_max_failed_logins")
    for _ in range(allowed):
        assert _login(email, "Wrong12345", "198.51.100.60").status_code == 401
    isolated_ctx.valkey.flushall()
    assert _login(email, PASSWORD, "198.51.100.60").status_code == 401
    assert _login(email, PASSWORD, "198.51.100.61").status_code == 200  # only that IP was locked out


def test_an_email_locked_for_everyone_stays_locked_after_flushall(isolated_ctx: AppContext) -> None:
    app_config.put(isolated_ctx, "cc_max_failed_logins", 1, "test")
    email = _staff(isolated_ctx)
    for n in range(cc_users.EMAIL_LOCK_FACTOR):
        assert _login(email, "Wrong12345", f"198.51.100.{n + 1}").status_code == 401
    assert cc_users.email_locked_until(isolated_ctx, email) is not None
    isolated_ctx.valkey.flushall()
    assert cc_users.email_locked_until(isolated_ctx, email) is not None
    assert _login(email, PASSWORD, "203.0.113.200").status_code == 401


def test_spent_current_password_guesses_stay_spent_after_flushall(isolated_ctx: AppContext) -> None:
    email = _staff(isolated_ctx)
    token = _login(email, PASSWORD, "198.51.100.70").json["access_token"]

    def change(current: str):
        return client("cc_users_change_own_password").patch(
            "/internal/control-center-users/me/password",
            json={"current_password": current, "new_password": "Newpass123"},
            headers=bearer(token),
        )

    for attempt in range(app_config.get(isolated_ctx, "cc_max_failed_logins")):
        assert change(f"Guess{attempt:04d}").status_code == 403
    isolated_ctx.valkey.flushall()
    assert change(PASSWORD).status_code == 429
