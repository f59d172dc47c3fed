"""Attacks on the auth routes, from the attacker's side (lockout, enumeration, sign-in amplification, takeover).

Each test states what an attacker must not be able to do, and fails on the code before the fix.
"""

from __future__ import annotations

import uuid

import pytest

from shared import app_config
from shared.auth import cc_users, passwords
from tests.conftest import isolated_database
from tests.support.auth_support import (
    GOOGLE_CERTS,
    GOOGLE_CLIENT,
    RsaKey,
    StubServer,
    bearer,
    client,
    identity_providers,
    phone,
    request_otp,
    seed_mitra,
)

ORIGIN = "https://cc.example.test"
PASSWORD = "Secret123"


def _email() -> str:
    return f"staff-{uuid.uuid4().hex[:10]}@bestie.test"


def _login(email: str, password: str = PASSWORD, ip: str = "203.0.113.7"):
    return client("auth_cc_login").post(
        "/internal/auth/login", json={"email": email, "password": password}, headers={"X-Forwarded-For": ip}
    )


# ---- an admin's stolen access token must not become a permanent takeover -----------


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


# ---- one IP must not map every mitra phone number ----------------------------------


def test_mitra_phone_lookups_count_toward_the_ip_limit(isolated_ctx, clock):
    app_config.put(isolated_ctx, "otp_max_requests_per_ip_per_hour", 3, "test")
    inactive = phone()
    seed_mitra(isolated_ctx, inactive, active=False)
    attacker = "198.51.100.23"
    probes = [phone(), inactive, phone(), phone(), inactive]
    codes = [request_otp("mitra", p, attacker).json["error"]["code"] for p in probes]
    assert codes == ["MITRA_NOT_FOUND", "ACCOUNT_INACTIVE", "MITRA_NOT_FOUND", "RATE_LIMITED", "RATE_LIMITED"]


# ---- sign-in routes must not be a free amplifier -----------------------------------


@pytest.fixture
def google(template_db, test_env, clock):
    key = RsaKey()
    # A database of its own: these tests lower app_config limits, which must not leak.
    with (
        isolated_database(template_db, test_env) as url,
        identity_providers(key, RsaKey(), clock, database_url=url) as (app_ctx, server),
    ):
        yield app_ctx, server, key


def _google_token(key: RsaKey) -> str:
    sub = uuid.uuid4().hex
    return key.sign({"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": sub, "email_verified": False})


def _google(token: str, ip: str = "192.0.2.10"):
    return client("auth_client_google").post(
        "/api/client/auth/google", json={"id_token": token}, headers={"X-Forwarded-For": ip}
    )


def _cert_fetches(server: StubServer) -> int:
    return sum(1 for r in server.requests if r["path"] == GOOGLE_CERTS)


@pytest.mark.parametrize("garbage", ["x", "not.a.jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9..", "." * 5000])
def test_a_token_that_is_not_jwt_shaped_is_refused_without_fetching_google_certs(google, garbage):
    _, server, _ = google
    resp = _google(garbage)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "ID_TOKEN_INVALID"
    assert _cert_fetches(server) == 0


def test_google_certs_are_fetched_once_while_their_cache_control_allows(google, clock):
    _, server, key = google
    server.headers[GOOGLE_CERTS] = {"Cache-Control": "public, max-age=600, must-revalidate", "Age": "100"}
    assert _google(_google_token(key), "192.0.2.11").status_code == 200
    assert _google(_google_token(key), "192.0.2.12").status_code == 200
    assert _google(_google_token(RsaKey()), "192.0.2.13").status_code == 401  # unknown key: no refetch storm
    assert _cert_fetches(server) == 1
    clock.advance(501)  # max-age 600 minus the 100 s the response had already aged
    assert _google(_google_token(key), "192.0.2.14").status_code == 200
    assert _cert_fetches(server) == 2


def test_google_sign_in_is_limited_per_ip_even_with_garbage_tokens(google):
    app_ctx, _, key = google
    app_config.put(app_ctx, "identity_signins_per_ip_per_hour", 3, "test")
    codes = [_google("garbage", "192.0.2.20").status_code for _ in range(3)]
    limited = _google(_google_token(key), "192.0.2.20")
    assert codes == [401, 401, 401]
    assert limited.status_code == 429 and limited.json["error"]["code"] == "RATE_LIMITED"
    assert limited.json["error"]["retry_after_seconds"] > 0
    assert _google(_google_token(key), "192.0.2.21").status_code == 200  # another IP is not affected


def test_apple_sign_in_is_limited_per_ip(google):
    app_ctx, _, _ = google
    app_config.put(app_ctx, "identity_signins_per_ip_per_hour", 2, "test")

    def apple():
        return client("auth_client_apple").post(
            "/api/client/auth/apple", json={"id_token": "garbage"}, headers={"X-Forwarded-For": "192.0.2.30"}
        )

    assert [apple().status_code for _ in range(3)] == [401, 401, 429]


def test_staff_login_is_limited_per_ip_before_any_bcrypt(isolated_ctx, clock):
    app_config.put(isolated_ctx, "cc_logins_per_ip_per_hour", 3, "test")
    email = _email()
    cc_users.create_user(isolated_ctx, email, PASSWORD, "operator")
    attacker = "198.51.100.40"
    codes = [_login(_email(), "Wrong1234", attacker).status_code for _ in range(3)]
    limited = _login(email, PASSWORD, attacker)
    assert codes == [401, 401, 401]
    assert limited.status_code == 429 and limited.json["error"]["code"] == "RATE_LIMITED"
    assert _login(email, PASSWORD, "198.51.100.41").status_code == 200


# ---- the lockout must not reveal which staff emails exist, nor lock the admin out --


@pytest.fixture
def bcrypt_checks(monkeypatch):
    """How many bcrypt checks the login made (the real check still runs)."""
    calls: list[str] = []
    real = passwords.verify_password

    def counting(password: str, hashed: str) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(passwords, "verify_password", counting)
    return calls


def test_locked_unknown_and_wrong_password_answers_are_identical(isolated_ctx, bcrypt_checks):
    known = _email()
    cc_users.create_user(isolated_ctx, known, PASSWORD, "admin")
    attacker = "198.51.100.50"
    answers = {}
    for email in (known, _email()):
        bcrypt_checks.clear()
        replies = [_login(email.upper(), "Wrong1234", attacker) for _ in range(7)]
        answers[email] = [(r.status_code, r.json) for r in replies]
        assert len(bcrypt_checks) == 7  # one bcrypt per attempt, locked or not, known or not
    known_answers, unknown_answers = answers.values()
    assert known_answers == unknown_answers == [(401, known_answers[0][1])] * 7
    assert known_answers[0][1]["error"]["code"] == "INVALID_CREDENTIALS"
    # Locked for that IP: even the right password gets the wrong-password answer.
    assert (_login(known, PASSWORD, attacker).status_code, _login(known, PASSWORD, attacker).json) == (
        401,
        known_answers[0][1],
    )


def test_one_ip_cannot_lock_the_admin_out(isolated_ctx):
    admin = _email()
    cc_users.create_user(isolated_ctx, admin, PASSWORD, "admin")
    for _ in range(20):
        assert _login(admin, "Wrong1234", "198.51.100.60").status_code == 401
    assert _login(admin, PASSWORD, "203.0.113.99").status_code == 200


def test_an_email_locks_for_everyone_only_after_failures_from_ten_ips(isolated_ctx):
    app_config.put(isolated_ctx, "cc_max_failed_logins", 2, "test")
    admin = _email()
    cc_users.create_user(isolated_ctx, admin, PASSWORD, "admin")
    for n in range(9):
        for _ in range(4):  # past its own lock, an IP adds nothing to the email-wide count
            assert _login(admin, "Wrong1234", f"198.51.100.{100 + n}").status_code == 401
    assert _login(admin, PASSWORD, "203.0.113.99").status_code == 200
    for _ in range(2):
        _login(admin, "Wrong1234", "198.51.100.200")
    assert _login(admin, PASSWORD, "203.0.113.98").status_code == 401  # the documented ceiling


# ---- per-IP limits: an IPv6 client owns a whole /64 --------------------------------------------


def _in_one_64(n: int) -> list[str]:
    """n addresses of one /64, as a single home or VM is given them."""
    prefix = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:{uuid.uuid4().int % 0xFFFF:x}"
    return [f"{prefix}:{uuid.uuid4().int % 0xFFFF:x}:{i:x}:{uuid.uuid4().int % 0xFFFF:x}:1" for i in range(n)]


def test_addresses_of_one_ipv6_64_share_the_anonymous_sign_in_limit(isolated_ctx, clock):
    app_config.put(isolated_ctx, "anonymous_signins_per_ip_per_hour", 3, "test")
    statuses = [
        client("auth_anonymous").post("/api/shared/auth/anonymous", headers={"X-Forwarded-For": address}).status_code
        for address in _in_one_64(5)
    ]
    assert statuses == [201, 201, 201, 429, 429]
    [elsewhere] = _in_one_64(1)  # another /64 is another client
    assert (
        client("auth_anonymous").post("/api/shared/auth/anonymous", headers={"X-Forwarded-For": elsewhere}).status_code
        == 201
    )


def test_addresses_of_one_ipv6_64_share_the_otp_limit(isolated_ctx, clock):
    app_config.put(isolated_ctx, "otp_max_requests_per_ip_per_hour", 2, "test")
    codes = [request_otp("customer", phone(), address).status_code for address in _in_one_64(4)]
    assert codes == [201, 201, 429, 429]


def test_ipv4_addresses_next_to_each_other_are_separate_clients(isolated_ctx, clock):
    app_config.put(isolated_ctx, "anonymous_signins_per_ip_per_hour", 1, "test")
    statuses = [
        client("auth_anonymous").post("/api/shared/auth/anonymous", headers={"X-Forwarded-For": f"198.51.100.{n}"})
        for n in (40, 41, 42)
    ]
    assert [s.status_code for s in statuses] == [201, 201, 201]


def test_a_staff_lockout_holds_across_the_addresses_of_one_ipv6_64(ctx):
    email = _email()
    cc_users.create_user(ctx, email, PASSWORD, "operator")
    addresses = _in_one_64(7)
    allowed = app_config.get(ctx, "cc_max_failed_logins")
    for address in addresses[:allowed]:
        assert _login(email, "Wrong12345", address).status_code == 401
    assert _login(email, PASSWORD, addresses[-1]).status_code == 401  # locked out, whichever address of the /64
    assert _login(email, PASSWORD, "203.0.113.77").status_code == 200  # the account itself is not locked


# ---- SMS pumping: customer codes go only to the countries the service operates in ---------------


@pytest.mark.parametrize("number", ["+37061234567", "+2250701234567", "+14155550123"])
def test_a_customer_code_to_a_country_outside_the_allow_list_is_refused_and_sends_nothing(ctx, number):
    resp = request_otp("customer", number)
    assert resp.status_code == 400, resp.json
    assert resp.json["error"]["code"] == "PHONE_COUNTRY_NOT_ALLOWED" and resp.json["error"]["field"] == "phone"
    assert ctx.db.scalar("SELECT count(*) FROM otp_requests WHERE phone_e164 = :p", p=number) == 0


def test_a_customer_code_to_an_indonesian_number_is_sent_by_default(ctx):
    number = phone()
    assert request_otp("customer", number).status_code == 201
    assert ctx.db.scalar("SELECT count(*) FROM otp_requests WHERE phone_e164 = :p", p=number) == 1
