"""Control-center accounts: login, lockout, cookie refresh, admin-only routes, passwords, CORS."""

from __future__ import annotations

import uuid

import pytest

from shared import app_config
from shared.auth import cc_users, cookies
from tests.support.auth_support import bearer, client

ORIGIN = "https://cc.example.test"
PASSWORD = "Secret123"


def _email() -> str:
    return f"staff-{uuid.uuid4().hex[:10]}@bestie.test"


def _user(ctx, role: str = "operator", password: str = PASSWORD) -> str:
    email = _email()
    cc_users.create_user(ctx, email, password, role)
    return email


def _login(email: str, password: str = PASSWORD, headers=None):
    return client("auth_cc_login").post(
        "/internal/auth/login", json={"email": email, "password": password}, headers=headers or {}
    )


def _set_cookie(resp) -> str:
    return next(v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith(cookies.NAME))


def _cookie_value(resp) -> str:
    return _set_cookie(resp).split(";", 1)[0].split("=", 1)[1]


def test_login_puts_the_refresh_token_only_in_a_strict_cookie(ctx):
    email = _user(ctx, "admin")
    resp = _login(email.upper())
    assert resp.status_code == 200
    assert "refresh_token" not in resp.json
    assert resp.json["user"]["role"] == "admin" and resp.json["token_type"] == "Bearer"
    header = _set_cookie(resp)
    attrs = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")}
    assert "httponly" in attrs and "secure" in attrs
    assert attrs["samesite"] == "SameSite=Strict" and attrs["path"] == "Path=/internal/auth"
    assert 30 * 86400 - 60 <= int(attrs["max-age"].split("=")[1]) <= 30 * 86400


def test_cookie_refresh_rotates_and_me_works(ctx):
    email = _user(ctx)
    login = _login(email)
    c = client("auth_cc_refresh")
    c.set_cookie(cookies.NAME, _cookie_value(login), path="/internal/auth")
    resp = c.post("/internal/auth/refresh")
    assert resp.status_code == 200 and "refresh_token" not in resp.json
    assert _cookie_value(resp) != _cookie_value(login)
    me = client("auth_cc_me").get("/internal/auth/me", headers=bearer(resp.json["access_token"]))
    assert me.status_code == 200 and me.json["email"] == email and me.json["role"] == "operator"
    missing = client("auth_cc_refresh").post("/internal/auth/refresh")
    assert missing.status_code == 401 and missing.json["error"]["code"] == "REFRESH_TOKEN_INVALID"


def test_cookie_routes_refuse_another_origin(ctx):
    email = _user(ctx)
    resp = _login(email, headers={"Origin": "https://evil.test"})
    assert resp.status_code == 403 and resp.json["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    ok = _login(email, headers={"Origin": ORIGIN})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_cors_preflight_only_for_the_control_center_origin(ctx):
    allowed = client("cc_users_list").options(
        "/internal/control-center-users", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert allowed.headers.get("Access-Control-Allow-Origin") == ORIGIN
    other = client("cc_users_list").options(
        "/internal/control-center-users",
        headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_logout_revokes_the_session_and_clears_the_cookie(ctx):
    email = _user(ctx)
    login = _login(email)
    c = client("auth_cc_logout")
    c.set_cookie(cookies.NAME, _cookie_value(login), path="/internal/auth")
    out = c.post("/internal/auth/logout")
    assert out.status_code == 204
    assert "Max-Age=0" in _set_cookie(out)
    me = client("auth_cc_me").get("/internal/auth/me", headers=bearer(login.json["access_token"]))
    assert me.status_code == 401


def test_unknown_email_and_wrong_password_look_the_same(ctx):
    email = _user(ctx)
    unknown = _login(_email())
    wrong = _login(email, "Wrong1234")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json["error"] == wrong.json["error"]


def test_lockout_after_n_failures_from_one_ip_lifts_after_the_lockout_time(isolated_ctx, clock):
    email = _user(isolated_ctx)
    attacker = {"X-Forwarded-For": "198.51.100.9"}
    codes = [_login(email, "Wrong1234", headers=attacker).json["error"]["code"] for _ in range(5)]
    assert codes == ["INVALID_CREDENTIALS"] * 5
    locked = _login(email, headers=attacker)  # the right password, from the locked-out IP
    assert locked.status_code == 401 and locked.json["error"]["code"] == "INVALID_CREDENTIALS"
    assert _login(email, headers={"X-Forwarded-For": "198.51.100.10"}).status_code == 200  # another IP
    clock.advance(15 * 60 + 1)
    assert _login(email, headers=attacker).status_code == 200


def test_password_over_72_bytes_is_a_clear_400(ctx):
    email = _user(ctx)
    long_pw = "Aa1" + "é" * 35  # 73 bytes, 38 characters
    resp = _login(email, long_pw)
    assert resp.status_code == 400 and resp.json["error"]["field"] == "password"
    with pytest.raises(Exception, match="72 bytes"):
        cc_users.create_user(ctx, _email(), long_pw, "operator")


@pytest.mark.parametrize("weak", ["short1A", "alllower123", "ALLUPPER123", "NoDigitsHere"])
def test_password_policy_is_enforced_on_create(ctx, weak):
    admin = _login(_user(ctx, "admin")).json["access_token"]
    resp = client("cc_users_create").post(
        "/internal/control-center-users", json={"email": _email(), "password": weak}, headers=bearer(admin)
    )
    assert resp.status_code == 400 and resp.json["error"]["field"] == "password"


def test_admin_creates_and_lists_users_operator_cannot(ctx):
    admin = _login(_user(ctx, "admin")).json["access_token"]
    email = _email()
    created = client("cc_users_create").post(
        "/internal/control-center-users",
        json={"email": email, "password": PASSWORD, "role": "operator"},
        headers=bearer(admin),
    )
    assert created.status_code == 201 and created.json["role"] == "operator" and "password_hash" not in created.json
    dup = client("cc_users_create").post(
        "/internal/control-center-users", json={"email": email.upper(), "password": PASSWORD}, headers=bearer(admin)
    )
    assert dup.status_code == 409 and dup.json["error"]["code"] == "EMAIL_TAKEN"
    listed = client("cc_users_list").get("/internal/control-center-users", headers=bearer(admin))
    assert email in [u["email"] for u in listed.json["users"]]
    operator = _login(email).json["access_token"]
    denied = client("cc_users_list").get("/internal/control-center-users", headers=bearer(operator))
    assert denied.status_code == 403 and denied.json["error"]["code"] == "ADMIN_REQUIRED"


def test_demoted_admin_loses_admin_routes_at_once(ctx):
    email = _user(ctx, "admin")
    token = _login(email).json["access_token"]
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE control_center_users SET role = 'operator' WHERE email = :e", e=email)
        tx.commit()
    resp = client("cc_users_list").get("/internal/control-center-users", headers=bearer(token))
    assert resp.status_code == 403


def test_own_password_change_keeps_this_session_and_revokes_the_others(ctx):
    email = _user(ctx)
    here = _login(email).json["access_token"]
    elsewhere = _login(email).json["access_token"]
    wrong = client("cc_users_change_own_password").patch(
        "/internal/control-center-users/me/password",
        json={"current_password": "Nope12345", "new_password": "Newpass123"},
        headers=bearer(here),
    )
    assert wrong.status_code == 403 and wrong.json["error"]["code"] == "CURRENT_PASSWORD_INCORRECT"
    ok = client("cc_users_change_own_password").patch(
        "/internal/control-center-users/me/password",
        json={"current_password": PASSWORD, "new_password": "Newpass123"},
        headers=bearer(here),
    )
    assert ok.status_code == 200 and ok.json["revoked_sessions"] == 1
    assert client("auth_cc_me").get("/internal/auth/me", headers=bearer(here)).status_code == 200
    assert client("auth_cc_me").get("/internal/auth/me", headers=bearer(elsewhere)).status_code == 401
    assert _login(email, "Newpass123").status_code == 200


def test_wrong_current_passwords_are_counted_like_login_failures_and_then_refused_with_429(ctx):
    email = _user(ctx)
    token = _login(email).json["access_token"]

    def change(current: str):
        return client("cc_users_change_own_password").patch(
            "/internal/control-center-users/me/password",
            json={"current_password": current, "new_password": "Newpass123"},
            headers=bearer(token),
        )

    allowed = app_config.get(ctx, "cc_max_failed_logins")
    for attempt in range(allowed):
        wrong = change(f"Guess{attempt:04d}")
        assert wrong.status_code == 403 and wrong.json["error"]["code"] == "CURRENT_PASSWORD_INCORRECT"
    # The guesses are spent: even the right password is refused until the window passes.
    refused = change(PASSWORD)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) > 0
    assert _login(email, PASSWORD).status_code == 200  # unchanged
    assert _login(email, "Newpass123").status_code == 401


def test_admin_reset_revokes_every_session_of_the_user(ctx):
    admin = _login(_user(ctx, "admin")).json["access_token"]
    email = _user(ctx)
    victim = _login(email).json
    user_id = victim["user"]["id"]
    resp = client("cc_users_reset_password").patch(
        f"/internal/control-center-users/{user_id}/password",
        json={"new_password": "Reset1234"},
        headers=bearer(admin),
    )
    assert resp.status_code == 200 and resp.json["revoked_sessions"] == 1
    assert client("auth_cc_me").get("/internal/auth/me", headers=bearer(victim["access_token"])).status_code == 401
    assert _login(email, "Reset1234").status_code == 200
    missing = client("cc_users_reset_password").patch(
        f"/internal/control-center-users/{uuid.uuid4()}/password",
        json={"new_password": "Reset1234"},
        headers=bearer(admin),
    )
    assert missing.status_code == 404


def test_customer_token_cannot_reach_control_center_routes(ctx):
    from tests.support.auth_support import anonymous

    anon = anonymous()
    resp = client("auth_cc_me").get("/internal/auth/me", headers=bearer(anon["access_token"]))
    assert resp.status_code == 403


def test_initial_admin_seed_is_idempotent(isolated_ctx, clock):
    assert cc_users.ensure_admin(isolated_ctx, "Root@Bestie.test", "Rootpass1") is True
    assert cc_users.ensure_admin(isolated_ctx, "root@bestie.test", "Rootpass1") is False
    assert isolated_ctx.db.scalar("SELECT count(*) FROM control_center_users") == 1
    assert _login("root@bestie.test", "Rootpass1").json["user"]["role"] == "admin"
