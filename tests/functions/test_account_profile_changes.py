"""A customer changes their phone by an OTP sent to the new number; a mitra edits their display name."""

from __future__ import annotations

import threading

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
)


def _change_phone(headers, request_id, code):
    return client("auth_client_phone_change").put(
        "/api/client/auth/phone", json={"request_id": request_id, "code": code}, headers=headers
    )


def _code_for(number):
    request_id = request_otp("customer", number).json["request_id"]
    return request_id, last_code(number)


def test_a_customer_moves_to_a_new_number_by_its_code_and_the_old_number_is_free(ctx):
    old, new = phone(), phone()
    signed = otp_sign_in("customer", old).json
    headers = bearer(signed["access_token"])
    resp = _change_phone(headers, *_code_for(new))
    assert resp.status_code == 200, resp.json
    assert resp.json["phone"] == new and resp.json["id"] == signed["user"]["id"]
    assert client("auth_client_me").get("/api/client/auth/me", headers=headers).json["phone"] == new
    assert refresh(signed["refresh_token"]).status_code == 200  # the session stays
    # The new number signs in to the same account; the old one now makes a new account.
    with ctx.db.transaction() as tx:  # past the resend cooldown of both numbers
        tx.execute("DELETE FROM otp_requests WHERE phone_e164 IN (:a, :b)", a=old, b=new)
        tx.commit()
    assert otp_sign_in("customer", new).json["user"]["id"] == signed["user"]["id"]
    assert otp_sign_in("customer", old).json["user"]["id"] != signed["user"]["id"]


def test_a_number_of_another_account_is_identity_taken_and_nothing_changes(ctx):
    mine, theirs = phone(), phone()
    signed = otp_sign_in("customer", mine).json
    otp_sign_in("customer", theirs)
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM otp_requests WHERE phone_e164 = :p", p=theirs)
        tx.commit()
    request_id, code = _code_for(theirs)
    resp = _change_phone(bearer(signed["access_token"]), request_id, code)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "IDENTITY_TAKEN"
    assert (
        client("auth_client_me").get("/api/client/auth/me", headers=bearer(signed["access_token"])).json["phone"]
        == mine
    )
    # The code was not consumed by the refused change.
    assert ctx.db.scalar("SELECT consumed_at FROM otp_requests WHERE id = CAST(:i AS uuid)", i=request_id) is None


def test_a_wrong_code_changes_nothing_and_counts_an_attempt(ctx):
    signed = anonymous()
    new = phone()
    request_id, code = _code_for(new)
    wrong = "000000" if code != "000000" else "111111"
    resp = _change_phone(bearer(signed["access_token"]), request_id, wrong)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "CODE_MISMATCH"
    assert (
        client("auth_client_me").get("/api/client/auth/me", headers=bearer(signed["access_token"])).json["phone"]
        is None
    )
    # An anonymous customer may also add a number this way: it is then a full account.
    added = _change_phone(bearer(signed["access_token"]), request_id, code)
    assert added.status_code == 200 and added.json["phone"] == new and added.json["is_anonymous"] is False


def test_a_mitra_edits_its_display_name(isolated_ctx: AppContext):
    ctx = isolated_ctx
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    headers = bearer(otp_sign_in("mitra", number).json["access_token"])
    resp = client("auth_mitra_profile").patch("/api/mitra/auth/profile", json={"display_name": "Sari"}, headers=headers)
    assert resp.status_code == 200, resp.json
    assert resp.json["display_name"] == "Sari" and resp.json["user_type"] == "mitra"
    assert client("auth_mitra_me").get("/api/mitra/auth/me", headers=headers).json["display_name"] == "Sari"
    logged = ctx.db.rows("SELECT event, actor FROM mitra_status_logs WHERE mitra_id = CAST(:m AS uuid)", m=mitra_id)
    assert [(r["event"], r["actor"]) for r in logged] == [("edited", f"mitra:{mitra_id}")]
    blank = client("auth_mitra_profile").patch("/api/mitra/auth/profile", json={"display_name": " "}, headers=headers)
    assert blank.status_code == 400 and blank.json["error"]["field"] == "display_name"


def test_two_customers_moving_to_one_number_at_once_one_wins(ctx):
    number = phone()
    first, second = anonymous(), anonymous()
    codes = []
    for _ in range(2):
        codes.append(_code_for(number))
        with ctx.db.transaction() as tx:  # past the resend cooldown for the second code
            tx.execute(
                "UPDATE otp_requests SET created_at = created_at - interval '1 hour' WHERE phone_e164 = :p", p=number
            )
            tx.commit()
    barrier = threading.Barrier(2)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def change(signed: dict, code: tuple[str, str]) -> None:
        barrier.wait()
        resp = _change_phone(bearer(signed["access_token"]), *code)
        with lock:
            answers.append((resp.status_code, (resp.json.get("error") or {}).get("code", "")))

    threads = [threading.Thread(target=change, args=args) for args in ((first, codes[0]), (second, codes[1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [(200, ""), (409, "IDENTITY_TAKEN")]
    owners = ctx.db.scalar("SELECT count(*) FROM customers WHERE phone_e164 = :p", p=number)
    assert owners == 1
