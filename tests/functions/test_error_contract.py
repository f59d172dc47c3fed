"""The error contract the apps branch on: one account-state vocabulary for customers and mitras,
the two identity conflicts told apart, one `user` shape, the OTP format checked before it costs an
attempt, and one paging scheme (docs/api.md, "Errors"; docs/auth.md, "Account states")."""

from __future__ import annotations

from shared import availability
from shared.cc import customer_admin
from shared.context import AppContext
from tests.support.auth_support import (
    anonymous,
    bearer,
    client,
    last_code,
    otp_sign_in,
    phone,
    refresh,
    request_otp,
    seed_mitra,
    verify_otp,
)
from tests.support.tokens import cc_token

# ---- account states -----------------------------------------------------------------------------


def _code(resp):
    return resp.status_code, resp.json["error"]["code"]


def test_a_deactivated_mitra_is_403_account_inactive_on_every_route_and_on_refresh(isolated_ctx: AppContext):
    ctx = isolated_ctx
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    signed = otp_sign_in("mitra", number).json
    headers = bearer(signed["access_token"])
    availability.deactivate(ctx, mitra_id, "cc:test")

    assert _code(client("auth_mitra_me").get("/api/mitra/auth/me", headers=headers)) == (403, "ACCOUNT_INACTIVE")
    assert _code(client("mitra_status_get").get("/api/mitra/status", headers=headers)) == (403, "ACCOUNT_INACTIVE")
    assert _code(client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=headers)) == (
        403,
        "ACCOUNT_INACTIVE",
    )
    assert _code(refresh(signed["refresh_token"])) == (403, "ACCOUNT_INACTIVE")


def test_a_reactivated_mitras_old_session_is_plain_revoked(isolated_ctx: AppContext):
    ctx = isolated_ctx
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    signed = otp_sign_in("mitra", number).json
    availability.deactivate(ctx, mitra_id, "cc:test")
    availability.activate(ctx, mitra_id, "cc:test")
    me = client("auth_mitra_me").get("/api/mitra/auth/me", headers=bearer(signed["access_token"]))
    assert _code(me) == (401, "SESSION_REVOKED")  # the account may sign in again: it should
    assert _code(refresh(signed["refresh_token"])) == (401, "SESSION_REVOKED")


def test_a_blocked_customer_is_403_account_blocked_on_every_route_as_on_refresh(ctx):
    signed = anonymous()
    customer_admin.block(ctx, signed["user"]["id"], "cc:test", None)
    me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(signed["access_token"]))
    assert _code(me) == (403, "ACCOUNT_BLOCKED")
    assert _code(refresh(signed["refresh_token"])) == (403, "ACCOUNT_BLOCKED")


# ---- identity conflicts -------------------------------------------------------------------------


def _skip_cooldown(ctx, number):
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM otp_requests WHERE phone_e164 = :p", p=number)
        tx.commit()


def test_a_phone_of_another_account_and_a_second_phone_of_ones_own_are_two_codes(ctx):
    owner_number, mine, other = phone(), phone(), phone()
    otp_sign_in("customer", owner_number)
    me = otp_sign_in("customer", mine).json
    headers = bearer(me["access_token"])

    _skip_cooldown(ctx, owner_number)
    taken = otp_sign_in("customer", owner_number, headers)
    assert _code(taken) == (409, "IDENTITY_TAKEN")

    already = otp_sign_in("customer", other, headers)
    assert _code(already) == (409, "IDENTITY_ALREADY_LINKED")


# ---- one user shape -----------------------------------------------------------------------------


def test_refresh_returns_the_same_user_as_sign_in_for_customers_and_mitras(isolated_ctx: AppContext):
    ctx = isolated_ctx
    customer = anonymous()
    refreshed = refresh(customer["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["user"] == customer["user"]

    number = phone()
    seed_mitra(ctx, number)
    mitra = otp_sign_in("mitra", number).json
    refreshed = refresh(mitra["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["user"] == mitra["user"] and refreshed.json["user"]["user_type"] == "mitra"


# ---- the OTP format -----------------------------------------------------------------------------


def test_an_otp_of_the_wrong_format_is_400_and_costs_no_attempt(ctx):
    number = phone()
    request_id = request_otp("customer", number).json["request_id"]
    right = last_code(number)
    for bad in ("12345", "1234567", "12a456", "\u0661\u0662\u0663\u0664\u0665\u0666"):
        resp = verify_otp("customer", request_id, bad)
        assert resp.status_code == 400, resp.json
        assert resp.json["error"]["code"] == "VALIDATION_FAILED" and resp.json["error"]["field"] == "code"
    wrong = "000000" if right != "000000" else "111111"
    mismatch = verify_otp("customer", request_id, wrong)
    max_attempts = 5
    assert mismatch.json["error"]["code"] == "CODE_MISMATCH"
    assert mismatch.json["error"]["attempts_left"] == max_attempts - 1  # only the well-formed wrong code counted
    assert verify_otp("customer", request_id, right).status_code == 200


# ---- one paging scheme --------------------------------------------------------------------------


def test_mitra_logs_page_with_cursor_and_still_accept_before(isolated_ctx: AppContext):
    ctx = isolated_ctx
    mitra_id = seed_mitra(ctx, phone())
    for _ in range(3):
        availability.set_online(ctx, mitra_id, "test")
        availability.set_offline(ctx, mitra_id, "test")
    headers = bearer(cc_token(ctx))
    logs = client("mitras_logs")
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = logs.get(f"/internal/mitras/{mitra_id}/logs", query_string=query, headers=headers)
        assert page.status_code == 200, page.json
        seen += [entry["id"] for entry in page.json["logs"]]
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    everything = logs.get(f"/internal/mitras/{mitra_id}/logs", headers=headers).json["logs"]
    assert seen == [entry["id"] for entry in everything] and len(seen) == 6
    # `before` (deprecated) still pages as it did.
    old = logs.get(f"/internal/mitras/{mitra_id}/logs", query_string={"before": seen[1]}, headers=headers)
    assert [entry["id"] for entry in old.json["logs"]] == seen[2:]
    bad = logs.get(f"/internal/mitras/{mitra_id}/logs", query_string={"cursor": "nonsense"}, headers=headers)
    assert _code(bad) == (400, "VALIDATION_FAILED")
