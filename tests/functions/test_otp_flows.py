"""Phone OTP through the real entry points: every error code, limits, phone spellings, linking."""

from __future__ import annotations

import json

from shared import context
from shared.context import AppContext
from tests.support.auth_support import (
    anonymous,
    bearer,
    client,
    fresh_app,
    ip,
    last_code,
    otp_sign_in,
    phone,
    request_otp,
    seed_mitra,
    verify_otp,
)


def _set_config(ctx: AppContext, key: str, value: int) -> None:
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE app_config SET value = CAST(:v AS jsonb) WHERE key = :k", v=json.dumps(value), k=key)
        tx.commit()


def test_customer_signs_in_with_a_code_that_works_once(ctx):
    number = phone()
    req = request_otp("customer", number)
    assert req.status_code == 201
    assert req.json["expires_in"] == 300 and req.json["resend_after_seconds"] == 60
    code = last_code(number)
    ok = verify_otp("customer", req.json["request_id"], code)
    assert ok.status_code == 200
    assert ok.json["user"]["phone"] == number and ok.json["user"]["is_anonymous"] is False
    assert ok.json["refresh_token"] and ok.json["access_token"]
    again = verify_otp("customer", req.json["request_id"], code)
    assert again.status_code == 409 and again.json["error"]["code"] == "OTP_USED"
    stored = ctx.db.one(
        "SELECT code_hash, consumed_at FROM otp_requests WHERE id = CAST(:i AS uuid)", i=req.json["request_id"]
    )
    assert stored["consumed_at"] is not None and code.encode() not in bytes(stored["code_hash"])


def test_wrong_codes_count_down_then_exhaust_even_the_right_code(ctx):
    number = phone()
    req = request_otp("customer", number).json
    code = last_code(number)
    wrong = "000000" if code != "000000" else "111111"
    left = []
    for _ in range(5):
        resp = verify_otp("customer", req["request_id"], wrong)
        assert resp.status_code == 400 and resp.json["error"]["code"] == "CODE_MISMATCH"
        left.append(resp.json["error"]["attempts_left"])
    assert left == [4, 3, 2, 1, 0]
    final = verify_otp("customer", req["request_id"], code)
    assert final.status_code == 429 and final.json["error"]["code"] == "ATTEMPTS_EXCEEDED"


def test_expired_code_is_refused(isolated_ctx, clock):
    number = phone()
    req = request_otp("customer", number).json
    clock.advance(301)
    resp = verify_otp("customer", req["request_id"], last_code(number))
    assert resp.status_code == 410 and resp.json["error"]["code"] == "OTP_EXPIRED"


def test_customer_code_on_the_mitra_route_is_wrong_flow(ctx):
    number = phone()
    seed_mitra(ctx, number)
    req = request_otp("customer", number).json
    resp = verify_otp("mitra", req["request_id"], last_code(number))
    assert resp.status_code == 400 and resp.json["error"]["code"] == "WRONG_FLOW"
    # and the reverse
    other = phone()
    seed_mitra(ctx, other)
    mreq = request_otp("mitra", other).json
    back = verify_otp("customer", mreq["request_id"], last_code(other))
    assert back.status_code == 400 and back.json["error"]["code"] == "WRONG_FLOW"


def test_unknown_request_id_is_404(ctx):
    resp = verify_otp("customer", "00000000-0000-4000-8000-000000000000", "123456")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "OTP_NOT_FOUND"
    bad = verify_otp("customer", "not-a-uuid", "123456")
    assert bad.status_code == 400 and bad.json["error"]["field"] == "request_id"


def test_unknown_mitra_phone_is_404_and_no_sms_is_sent(ctx):
    number = phone()
    resp = request_otp("mitra", number)
    assert resp.status_code == 404 and resp.json["error"]["code"] == "MITRA_NOT_FOUND"
    assert ctx.db.scalar("SELECT count(*) FROM otp_requests WHERE phone_e164 = :p", p=number) == 0
    assert client("test_last_otp").get("/internal/_test/last-otp", query_string={"phone": number}).status_code == 404


def test_deactivated_mitra_is_refused_at_request(ctx):
    number = phone()
    seed_mitra(ctx, number, active=False)
    resp = request_otp("mitra", number)
    assert resp.status_code == 403 and resp.json["error"]["code"] == "ACCOUNT_INACTIVE"


def test_mitra_deactivated_between_request_and_verify_is_refused_at_verify(ctx):
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    req = request_otp("mitra", number).json
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE mitras SET is_active = false WHERE id = CAST(:i AS uuid)", i=mitra_id)
        tx.commit()
    resp = verify_otp("mitra", req["request_id"], last_code(number))
    assert resp.status_code == 403 and resp.json["error"]["code"] == "ACCOUNT_INACTIVE"
    assert ctx.db.scalar("SELECT count(*) FROM auth_sessions WHERE user_id = CAST(:i AS uuid)", i=mitra_id) == 0


def test_mitra_signs_in_and_reads_its_profile(ctx):
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    signed = otp_sign_in("mitra", number)
    assert signed.status_code == 200 and signed.json["user"]["id"] == mitra_id
    me = client("auth_mitra_me").get("/api/mitra/auth/me", headers=bearer(signed.json["access_token"]))
    assert me.status_code == 200
    assert me.json["user_type"] == "mitra" and me.json["phone"] == number and me.json["is_active"] is True
    assert me.json["is_online"] is False and me.json["display_name"] == "Mitra"


def test_resend_cooldown_then_per_phone_hourly_limit_across_two_instances(isolated_ctx, clock):
    second = AppContext(isolated_ctx.settings, clock=clock)  # another instance: own pools and clients
    apps = [(isolated_ctx, fresh_app("auth_client_otp_request")), (second, fresh_app("auth_client_otp_request"))]
    number = phone()
    try:
        statuses = []
        for i in range(6):
            app_ctx, app = apps[i % 2]
            context.install(app_ctx)
            resp = request_otp("customer", number, client_ip=ip(), app=app)
            statuses.append(resp.status_code)
            if i == 0:
                too_soon = request_otp("customer", number, app=apps[1][1])
                assert too_soon.status_code == 429 and too_soon.json["error"]["code"] == "RESEND_COOLDOWN"
                assert too_soon.json["error"]["retry_after_seconds"] == 60
                assert too_soon.headers["Retry-After"] == "60"
            clock.advance(61)
        assert statuses == [201] * 5 + [429]
        assert resp.json["error"]["code"] == "RATE_LIMITED" and resp.json["error"]["retry_after_seconds"] > 0
        clock.advance(3600)
        assert request_otp("customer", number, app=apps[0][1]).status_code == 201
    finally:
        second.close()


def test_per_ip_limit_holds_across_phones_and_instances(isolated_ctx, clock):
    _set_config(isolated_ctx, "otp_max_requests_per_ip_per_hour", 3)
    address = ip()
    apps = [fresh_app("auth_client_otp_request"), fresh_app("auth_client_otp_request")]
    statuses = [request_otp("customer", phone(), client_ip=address, app=apps[i % 2]).status_code for i in range(4)]
    assert statuses == [201, 201, 201, 429]
    assert request_otp("customer", phone(), client_ip=ip()).status_code == 201  # another client is unaffected


def test_client_chosen_forwarded_for_entries_do_not_dodge_the_ip_limit(isolated_ctx, clock):
    _set_config(isolated_ctx, "otp_max_requests_per_ip_per_hour", 2)
    statuses = []
    for n in range(3):
        # The client prepends whatever it likes; Google's front end appends the real address.
        resp = client("auth_client_otp_request").post(
            "/api/client/auth/otp/request",
            json={"phone": phone()},
            headers={"X-Forwarded-For": f"1.2.3.{n}, 203.0.113.9"},
        )
        statuses.append(resp.status_code)
    assert statuses == [201, 201, 429]


def test_three_spellings_of_one_number_are_one_customer(isolated_ctx, clock):
    local = "0812" + phone()[-8:]
    ids = set()
    for spelling in (local, "62" + local[1:], "+62 " + local[1:4] + " " + local[4:]):
        resp = otp_sign_in("customer", spelling)
        assert resp.status_code == 200, resp.json
        ids.add(resp.json["user"]["id"])
        clock.advance(61)
    assert len(ids) == 1
    assert isolated_ctx.db.scalar("SELECT count(*) FROM customers") == 1


def test_anonymous_customer_is_upgraded_by_phone_verify(ctx):
    anon = anonymous()
    number = phone()
    resp = otp_sign_in("customer", number, headers=bearer(anon["access_token"]))
    assert resp.status_code == 200
    assert resp.json["user"]["id"] == anon["user"]["id"] and resp.json["user"]["is_anonymous"] is False


def test_phone_owned_by_another_customer_is_identity_conflict_and_changes_nothing(ctx):
    number = phone()
    owner = otp_sign_in("customer", number).json
    anon = anonymous()
    before = ctx.db.rows(
        "SELECT * FROM customers WHERE id IN (CAST(:a AS uuid), CAST(:b AS uuid)) ORDER BY id",
        a=owner["user"]["id"],
        b=anon["user"]["id"],
    )
    with ctx.db.transaction() as tx:  # skip the resend cooldown
        tx.execute("DELETE FROM otp_requests WHERE phone_e164 = :p", p=number)
        tx.commit()
    req = request_otp("customer", number).json
    resp = verify_otp("customer", req["request_id"], last_code(number), headers=bearer(anon["access_token"]))
    assert resp.status_code == 409 and resp.json["error"]["code"] == "IDENTITY_TAKEN"
    after = ctx.db.rows(
        "SELECT * FROM customers WHERE id IN (CAST(:a AS uuid), CAST(:b AS uuid)) ORDER BY id",
        a=owner["user"]["id"],
        b=anon["user"]["id"],
    )
    assert after == before
    unused = ctx.db.scalar("SELECT consumed_at FROM otp_requests WHERE id = CAST(:i AS uuid)", i=req["request_id"])
    assert unused is None


def test_a_bad_bearer_on_verify_is_401_not_ignored(ctx):
    number = phone()
    req = request_otp("customer", number).json
    resp = verify_otp("customer", req["request_id"], last_code(number), headers=bearer("junk"))
    assert resp.status_code == 401


def test_anonymous_sign_in_is_rate_limited_per_ip(isolated_ctx, clock):
    _set_config(isolated_ctx, "anonymous_signins_per_ip_per_hour", 2)
    address = ip()
    statuses = [
        client("auth_anonymous").post("/api/shared/auth/anonymous", headers={"X-Forwarded-For": address}).status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 429]


def test_profile_update_and_me(ctx):
    anon = anonymous()
    patched = client("auth_client_profile").patch(
        "/api/client/auth/profile", json={"display_name": "  Sari "}, headers=bearer(anon["access_token"])
    )
    assert patched.status_code == 200 and patched.json["display_name"] == "Sari"
    me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(anon["access_token"])).json
    assert me["display_name"] == "Sari" and me["is_anonymous"] is True and me["user_type"] == "customer"
    empty = client("auth_client_profile").patch(
        "/api/client/auth/profile", json={"display_name": ""}, headers=bearer(anon["access_token"])
    )
    assert empty.status_code == 400 and empty.json["error"]["field"] == "display_name"


def test_bad_phone_is_400_naming_the_field(ctx):
    resp = request_otp("customer", "12")
    assert resp.status_code == 400 and resp.json["error"]["field"] == "phone"
