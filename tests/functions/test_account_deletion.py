"""A customer deletes their account: access ends everywhere, personal data goes, what the other
party and the audit need stays, and the Apple token is revoked (now, or by the sweep later)."""

from __future__ import annotations

import uuid

from shared.auth import apple_tokens
from shared.sweeps import jobs
from tests.support import auth_support
from tests.support.auth_support import (
    GOOGLE_CLIENT,
    apple_sign_in,
    bearer,
    client,
    otp_sign_in,
    phone,
    refresh,
)
from tests.support.chat_support import active_session, send, sessions


def _delete(headers):
    return client("auth_client_delete").delete("/api/client/auth/me", headers=headers)


def _google_link(keys, headers, sub):
    claims = {"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": sub}
    claims.update(email=f"{sub[:8]}@gmail.test", email_verified=True)
    token = keys[0].sign(claims)
    return client("auth_client_google").post("/api/client/auth/google", json={"id_token": token}, headers=headers)


def test_a_whole_apple_life_sign_in_link_delete_and_the_apple_token_is_revoked(providers, keys):
    app_ctx, _ = providers
    apple_sub, google_sub, number = uuid.uuid4().hex, uuid.uuid4().hex, phone()
    signed = apple_sign_in(keys[1], apple_sub, name="Ayu")
    assert signed.status_code == 200, signed.json
    customer_id = signed.json["user"]["id"]
    [apple_refresh] = auth_support.apple_standin.live_refresh_tokens(apple_sub)
    linked = _google_link(keys, bearer(signed.json["access_token"]), google_sub)
    assert linked.status_code == 200, linked.json
    linked = otp_sign_in("customer", number, bearer(linked.json["access_token"]))
    assert linked.status_code == 200 and linked.json["user"]["linked"] == {"phone": True, "google": True, "apple": True}
    other_device = apple_sign_in(keys[1], apple_sub)  # a second session on another device
    assert other_device.json["user"]["id"] == customer_id
    device = client("client_devices_put").put(
        "/api/client/devices",
        json={"fcm_token": f"fcm-{uuid.uuid4().hex}", "platform": "ios"},
        headers=bearer(linked.json["access_token"]),
    )
    assert device.status_code in (200, 201), device.json

    kept = [
        r["id"]
        for r in app_ctx.db.rows("SELECT id FROM apple_tokens WHERE customer_id = CAST(:c AS uuid)", c=customer_id)
    ]
    assert len(kept) == 1
    resp = _delete(bearer(linked.json["access_token"]))
    assert resp.status_code == 204, resp.json

    for pair in (linked.json, other_device.json):
        assert refresh(pair["refresh_token"]).status_code == 401
        me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 401
    row = app_ctx.db.one("SELECT * FROM customers WHERE id = CAST(:c AS uuid)", c=customer_id)
    assert row["deleted_at"] is not None
    assert [row[c] for c in ("phone_e164", "email", "google_sub", "apple_sub")] == [None] * 4
    assert row["display_name"] == "Deleted user"
    assert app_ctx.db.scalar("SELECT count(*) FROM devices WHERE user_id = CAST(:c AS uuid)", c=customer_id) == 0
    live = "SELECT count(*) FROM auth_sessions WHERE user_id = CAST(:c AS uuid) AND revoked_at IS NULL"
    assert app_ctx.db.scalar(live, c=customer_id) == 0
    assert (
        app_ctx.db.scalar(
            "SELECT count(*) FROM cc_audit_log WHERE target_id = :c AND action = 'customer.delete'", c=customer_id
        )
        == 1
    )
    assert apple_refresh in auth_support.apple_standin.revoked
    assert auth_support.apple_standin.live_refresh_tokens(apple_sub) == []  # the authorization ended at Apple
    assert app_ctx.db.scalar("SELECT count(*) FROM apple_tokens WHERE id = :id", id=kept[0]) == 0  # gone once revoked

    again = apple_sign_in(keys[1], apple_sub)  # the same Apple ID starts over: a new, empty account
    assert again.status_code == 200 and again.json["user"]["id"] != customer_id
    assert again.json["user"]["display_name"] is None and again.json["user"]["linked"]["phone"] is False


def test_a_failed_apple_revoke_never_blocks_deletion_and_the_sweep_retries_it(providers, keys):
    app_ctx, _ = providers
    sub = uuid.uuid4().hex
    signed = apple_sign_in(keys[1], sub)
    [token] = auth_support.apple_standin.live_refresh_tokens(sub)
    auth_support.apple_standin.revoke_failures = 1  # Apple answers 503 once

    assert _delete(bearer(signed.json["access_token"])).status_code == 204
    assert token not in auth_support.apple_standin.revoked
    [due] = app_ctx.db.rows("SELECT id, revoke_after, revoke_attempts FROM apple_tokens WHERE customer_id IS NULL")
    assert due["revoke_attempts"] == 1 and due["revoke_after"] > app_ctx.now()  # backing off

    assert apple_tokens.revoke_due(app_ctx)["apple_revoked"] == 0  # not before its back-off is over
    with app_ctx.db.transaction() as tx:  # the back-off is over
        tx.execute("UPDATE apple_tokens SET revoke_after = now() - interval '1 second' WHERE id = :id", id=due["id"])
        tx.commit()
    result = jobs.session_expiry_pass(app_ctx)
    assert result["apple_revoked"] >= 1 and result["apple_revoke_failed"] == 0
    assert token in auth_support.apple_standin.revoked
    assert app_ctx.db.scalar("SELECT count(*) FROM apple_tokens WHERE id = :id", id=due["id"]) == 0


def test_an_open_chat_ends_neutrally_and_the_mitra_transcript_reads_deleted_user(providers):
    app_ctx, _ = providers
    pair = active_session(app_ctx, customer_name="Budi Santoso")
    assert send("client", pair.customer, pair.session_id, "hello").status_code == 201

    assert _delete(pair.customer).status_code == 204

    [item] = [s for s in sessions("mitra", pair.mitra, view="history").json["sessions"] if s["id"] == pair.session_id]
    assert item["status"] == "ended" and item["end_reason"] == "customer_ended"  # the same as any ended chat
    assert item["customer"]["display_name"] == "Deleted user"
    messages = client("chat_mitra_messages").get(
        f"/api/mitra/chat-sessions/{pair.session_id}/messages", headers=pair.mitra
    )
    assert messages.status_code == 200 and "hello" in [m["body"] for m in messages.json["messages"]]
    assert "Budi Santoso" not in str(messages.json) + str(item)


def test_a_link_that_lost_the_race_to_the_deletion_does_not_revive_the_account(providers, keys):
    app_ctx, _ = providers
    signed = apple_sign_in(keys[1], uuid.uuid4().hex).json
    customer_id = signed["user"]["id"]
    # The deletion committed after this request's bearer was checked: its row is deleted, the
    # session not yet seen as revoked (the interleaving of a link racing the deletion).
    with app_ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE customers SET deleted_at = now(), apple_sub = NULL WHERE id = CAST(:c AS uuid)", c=customer_id
        )
        tx.commit()
    resp = _google_link(keys, bearer(signed["access_token"]), uuid.uuid4().hex)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "TOKEN_INVALID"
    assert app_ctx.db.scalar("SELECT google_sub FROM customers WHERE id = CAST(:c AS uuid)", c=customer_id) is None
