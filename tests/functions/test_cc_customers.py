"""Control-center customers over HTTP: search, view, block and unblock, with Valkey up and down."""

from __future__ import annotations

import uuid
from typing import Any

from infra.embedded import EmbeddedValkey
from shared import availability, notify, phones, push
from shared.context import AppContext
from tests.support import apps, mirror_state
from tests.support.auth_support import otp_sign_in, phone, refresh
from tests.support.chat_support import active_session, receive
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras, used
from tests.support.tokens import bearer, cc_token, mitra_token


def _block(customer_id: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    return apps.client("customers_block").post(f"/internal/customers/{customer_id}/block", json=body, headers=headers)


def _unblock(customer_id: str, headers: dict[str, str]) -> Any:
    return apps.client("customers_unblock").post(f"/internal/customers/{customer_id}/unblock", headers=headers)


def _me(headers: dict[str, str]) -> Any:
    return apps.client("auth_client_me").get("/api/client/auth/me", headers=headers)


def _signed_in_customer() -> tuple[str, str, str, str]:
    """(customer id, access token, refresh token, E.164 phone) of a customer signed in by OTP."""
    number = phone()
    resp = otp_sign_in("customer", number)
    assert resp.status_code == 200, resp.json
    return resp.json["user"]["id"], resp.json["access_token"], resp.json["refresh_token"], phones.normalize(number)


def _active_session(ctx: AppContext, auth: dict[str, str], mitra_auth: dict[str, str]) -> str:
    sid = api("request", auth).json["id"]
    assert api("accept", mitra_auth, sid).status_code == 200
    assert api("pay", bearer(cc_token(ctx)), sid).json["status"] == "active"
    return str(sid)


def _session_ids_of(ctx: AppContext, customer_id: str) -> list[str]:
    rows = ctx.db.rows("SELECT id FROM auth_sessions WHERE user_id = CAST(:u AS uuid)", u=customer_id)
    return [str(r["id"]) for r in rows]


def test_blocking_kills_tokens_at_once_ends_the_session_and_frees_the_mitra(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    [(mitra, mitra_auth)] = online_mitras(ctx, 1)
    customer_id, access, refresh_token, number = _signed_in_customer()
    auth = bearer(access)
    chat = _active_session(ctx, auth, mitra_auth)
    assert used(ctx, mitra) == (1, 1) and mitra not in mirror_state.actual(ctx)["available"]
    assert _me(auth).status_code == 200
    operator = cc_token(ctx, "operator")

    resp = _block(customer_id, bearer(operator), {"reason": "abusive messages"})

    assert resp.status_code == 200, resp.json
    assert resp.json["blocked"] is True and resp.json["revoked_sessions"] == 1
    assert resp.json["ended_chat_sessions"] == [chat]
    # The revocation is in Valkey, so the very next request is refused without waiting for the token's TTL.
    assert all(ctx.valkey.exists(ctx.keys.revoked(sid)) for sid in _session_ids_of(ctx, customer_id))
    refused = _me(auth)  # the account's state, as at sign-in and refresh (docs/auth.md, Account states)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "ACCOUNT_BLOCKED"
    assert api("request", auth).status_code == 403
    again = refresh(refresh_token)
    assert again.status_code == 403 and again.json["error"]["code"] == "ACCOUNT_BLOCKED"
    clock.advance(61)  # past the OTP resend cooldown of the first sign-in
    sign_in = otp_sign_in("customer", number)
    assert sign_in.status_code == 403 and sign_in.json["error"]["code"] == "ACCOUNT_BLOCKED"
    # The open session ended and the mitra's capacity is free in Postgres and in the mirror.
    view = apps.client("chat_sessions_get").get(f"/internal/chat-sessions/{chat}", headers=bearer(operator)).json
    assert (view["status"], view["end_reason"]) == ("ended", "customer_blocked")
    assert view["events"][-1]["type"] == "ended" and view["events"][-1]["actor"].startswith("cc:")
    assert used(ctx, mitra) == (0, 0)
    assert mitra in mirror_state.actual(ctx)["available"]
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)
    audit = ctx.db.rows("SELECT actor, action, target_id, detail FROM cc_audit_log ORDER BY id")
    # The setup's staff payment confirmation is audited too (docs/payments.md), then the block.
    assert [(a["action"], a["target_id"]) for a in audit] == [
        ("payment.confirm", chat),
        ("customer.block", customer_id),
    ]
    assert audit[1]["actor"] == resp.json["blocked_by"] and audit[1]["detail"]["reason"] == "abusive messages"


def test_blocking_while_valkey_is_down_still_kills_tokens_and_the_mirror_heals(
    isolated_ctx: AppContext, own_valkey: EmbeddedValkey
) -> None:
    ctx = apps.with_valkey(isolated_ctx, own_valkey.url)
    availability.ensure_seeded(ctx)
    [(mitra, mitra_auth)] = online_mitras(ctx, 1)
    customer_id, access, refresh_token, _ = _signed_in_customer()
    auth = bearer(access)
    chat = _active_session(ctx, auth, mitra_auth)
    assert used(ctx, mitra) == (1, 1)
    operator = bearer(cc_token(ctx, "operator"))

    own_valkey.stop()
    resp = _block(customer_id, operator)

    assert resp.status_code == 200, resp.json
    assert resp.json["revoked_sessions"] == 1 and resp.json["ended_chat_sessions"] == [chat]
    refused = _me(auth)  # the guard reads Postgres while Valkey is down
    assert refused.status_code == 403 and refused.json["error"]["code"] == "ACCOUNT_BLOCKED"
    assert refresh(refresh_token).json["error"]["code"] == "ACCOUNT_BLOCKED"
    status = ctx.db.scalar("SELECT status FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=chat)
    busy = ctx.db.scalar(
        "SELECT count(*) FROM chat_sessions"
        " WHERE mitra_id = CAST(:m AS uuid) AND status IN ('active', 'pending_payment')",
        m=mitra,
    )
    assert (status, busy) == ("ended", 0)

    # Valkey comes back empty: the reseed frees the capacity in the mirror and keeps the token dead.
    own_valkey.restart()
    assert availability.count_available(ctx)["source"] == "postgres"  # this call seeds
    assert used(ctx, mitra) == (0, 0)
    assert mitra in mirror_state.actual(ctx)["available"]
    assert _me(auth).status_code == 403  # still refused: ACCOUNT_BLOCKED


def test_blocking_a_searching_customer_cancels_the_search_and_closes_the_offers(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    mitras = online_mitras(ctx, 2)
    customer_id, auth = customer(ctx)
    sid = api("request", auth).json["id"]

    resp = _block(customer_id, bearer(cc_token(ctx, "operator")))

    assert resp.json["ended_chat_sessions"] == [sid]
    row = ctx.db.one("SELECT status, end_reason FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=sid)
    assert row == {"status": "cancelled", "end_reason": "customer_blocked"}
    offers = ctx.db.rows("SELECT response FROM pairing_offers WHERE session_id = CAST(:s AS uuid)", s=sid)
    assert [o["response"] for o in offers] == ["lost", "lost"]
    late = api("accept", mitras[0][1], sid)
    assert late.status_code == 409 and late.json["error"]["current_status"] == "cancelled"


def test_block_is_idempotent_and_unblock_lets_the_customer_sign_in_again(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    customer_id, _, refresh_token, number = _signed_in_customer()
    h = bearer(cc_token(ctx, "operator"))
    first = _block(customer_id, h)
    second = _block(customer_id, h)
    assert second.status_code == 200 and second.json["revoked_sessions"] == 0
    assert second.json["blocked_at"] == first.json["blocked_at"]

    resp = _unblock(customer_id, h)
    assert resp.status_code == 200 and resp.json["blocked"] is False and resp.json["blocked_at"] is None
    assert _unblock(customer_id, h).status_code == 200
    # The sessions revoked by the block stay revoked; a new sign-in works.
    stale = refresh(refresh_token)
    assert stale.status_code == 401 and stale.json["error"]["code"] == "SESSION_REVOKED"
    clock.advance(61)
    assert otp_sign_in("customer", number).status_code == 200
    actions = [r["action"] for r in ctx.db.rows("SELECT action FROM cc_audit_log ORDER BY id")]
    assert actions == ["customer.block", "customer.unblock"]  # the repeats changed nothing


def test_search_finds_customers_by_phone_name_and_email_page_by_page(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    with ctx.db.transaction() as tx:
        ids = [
            str(
                tx.scalar(
                    "INSERT INTO customers (display_name, phone_e164, email, is_anonymous, created_at)"
                    " VALUES (:n, :p, :e, false, now() - make_interval(secs => :age)) RETURNING id",
                    n=name,
                    p=ph,
                    e=email,
                    age=age,
                )
            )
            for name, ph, email, age in (
                ("Rina Wulandari", "+6281234500001", "rina@mail.test", 3),
                ("Budi_Santoso", "+6281234500002", None, 2),
                ("Sari", None, "sari%promo@mail.test", 1),
            )
        ]
        tx.commit()
    h = bearer(cc_token(ctx, "operator"))

    def search(query: dict[str, str]) -> Any:
        return apps.client("customers_list").get("/internal/customers", query_string=query, headers=h)

    assert [c["id"] for c in search({"search": "081234500002"}).json["customers"]] == [ids[1]]
    assert [c["id"] for c in search({"search": "+62 812-3450-0001"}).json["customers"]] == [ids[0]]
    assert [c["id"] for c in search({"search": "wulan"}).json["customers"]] == [ids[0]]
    assert [c["id"] for c in search({"search": "RINA@MAIL"}).json["customers"]] == [ids[0]]
    assert [c["id"] for c in search({"search": "i_s"}).json["customers"]] == [ids[1]]  # "_" is literal
    assert [c["id"] for c in search({"search": "i%p"}).json["customers"]] == [ids[2]]  # "%" is literal
    assert search({"search": "nobody"}).json == {"customers": [], "next_cursor": None}

    first = search({"limit": "2"}).json
    assert [c["id"] for c in first["customers"]] == [ids[2], ids[1]]
    rest = search({"limit": "2", "cursor": first["next_cursor"]}).json
    assert [c["id"] for c in rest["customers"]] == [ids[0]] and rest["next_cursor"] is None

    one = apps.client("customers_get").get(f"/internal/customers/{ids[0]}", headers=h)
    assert one.status_code == 200
    assert (one.json["phone"], one.json["email"], one.json["blocked"]) == ("+6281234500001", "rina@mail.test", False)
    assert one.json["open_session"] is None and one.json["session_counts"] == {} and one.json["audit"] == []


def test_customer_routes_refuse_bad_input_and_the_wrong_callers(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    customer_id, customer_auth = customer(ctx)
    h = bearer(cc_token(ctx, "operator"))
    listing = apps.client("customers_list")
    for query, field in (
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
        ({"search": "x" * 101}, "search"),
    ):
        resp = listing.get("/internal/customers", query_string=query, headers=h)
        assert resp.status_code == 400 and resp.json["error"]["field"] == field, query
    mitra_page = apps.client("mitras_list").get("/internal/mitras?limit=1", headers=h)
    online_mitras(ctx, 2)
    mitra_cursor = apps.client("mitras_list").get("/internal/mitras?limit=1", headers=h).json["next_cursor"]
    assert mitra_page.status_code == 200 and mitra_cursor
    other = listing.get("/internal/customers", query_string={"cursor": mitra_cursor}, headers=h)
    assert other.status_code == 400 and other.json["error"]["field"] == "cursor"  # another list's cursor

    unknown = str(uuid.uuid4())
    for resp in (
        apps.client("customers_get").get(f"/internal/customers/{unknown}", headers=h),
        _block(unknown, h),
        _unblock(unknown, h),
    ):
        assert resp.status_code == 404 and resp.json["error"]["code"] == "CUSTOMER_NOT_FOUND"
    bad = _block("not-a-uuid", h)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "id"
    assert _block(customer_id, h, {"reason": "x" * 501}).json["error"]["field"] == "reason"

    mitra_auth = bearer(mitra_token(ctx, online_mitras(ctx, 1)[0][0])[0])
    for caller in (customer_auth, mitra_auth):
        resp = _block(customer_id, caller)
        assert resp.status_code == 403 and resp.json["error"]["code"] == "WRONG_USER_TYPE"
        assert listing.get("/internal/customers", headers=caller).status_code == 403
    assert _block(customer_id, {}).status_code == 401
    assert ctx.db.scalar("SELECT blocked_at FROM customers WHERE id = CAST(:c AS uuid)", c=customer_id) is None
    assert ctx.db.scalar("SELECT count(*) FROM cc_audit_log") == 0


def test_a_blocked_customers_mitra_sees_a_neutral_end_reason_while_staff_see_the_block(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO devices (user_type, user_id, fcm_token, platform)"
            " VALUES ('mitra', CAST(:m AS uuid), :t, 'android')",
            m=pair.mitra_id,
            t=f"tok-{pair.mitra_id}",
        )
        tx.commit()
    log_push: Any = push.provider(ctx)
    log_push.sent.clear()
    operator = bearer(cc_token(ctx, "operator"))

    assert _block(pair.customer_id, operator).status_code == 200
    assert notify.drain(ctx)  # pushes leave after the response, from the context's outbox

    # What the mitra sees: the push, the system message in the conversation, its history list.
    [ended] = [data for tokens, data in log_push.sent if tokens == [f"tok-{pair.mitra_id}"]]
    assert (ended["type"], ended["end_reason"]) == ("session_ended", "closed_by_support")
    messages = receive("mitra", pair.mitra, pair.session_id).json["messages"]
    assert messages[-1]["sender_type"] == "system" and messages[-1]["body"] == "ended"
    assert messages[-1]["detail"] == {"end_reason": "closed_by_support"}
    history = apps.client("chat_mitra_sessions").get(
        "/api/mitra/chat-sessions", query_string={"view": "history"}, headers=pair.mitra
    )
    assert [(s["id"], s["end_reason"]) for s in history.json["sessions"]] == [(pair.session_id, "closed_by_support")]
    assert "customer_blocked" not in str(log_push.sent) + str(messages) + str(history.json)
    # What the staff see: the real reason, on the session and in its trail.
    view = apps.client("chat_sessions_get").get(f"/internal/chat-sessions/{pair.session_id}", headers=operator).json
    assert view["end_reason"] == "customer_blocked"
    assert view["events"][-1]["detail"] == {"reason": "customer_blocked"}
