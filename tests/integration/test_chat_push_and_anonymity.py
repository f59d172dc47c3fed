"""Chat pushes through the real firebase-admin against the loopback FCM stand-in, and anonymity.

With `mitra_sees_customer_name` 0 (the default) a mitra never sees the customer's display
name, phone or email: not in the push, not in the messages, not in its session lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest

from shared import anonymity, notify
from shared.context import AppContext
from tests.support.chat_support import active_session, receive, send, sessions
from tests.support.fcm_standin import FcmStandIn, fcm_installed
from tests.support.pairing_support import api, customer, online_mitras

NAME = "Siti Rahmawati"


@pytest.fixture
def fcm(isolated_ctx: AppContext) -> Iterator[FcmStandIn]:
    with fcm_installed(isolated_ctx) as standin:
        yield standin


def _register(ctx: AppContext, user_type: str, user_id: str, token: str) -> None:
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO devices (user_type, user_id, fcm_token, platform) VALUES (:t, CAST(:u AS uuid), :tok, 'ios')",
            t=user_type,
            u=user_id,
            tok=token,
        )
        tx.commit()


def _set_anonymity(ctx: AppContext, sees_name: int) -> None:
    with ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE app_config SET value = CAST(:v AS jsonb) WHERE key = 'mitra_sees_customer_name'", v=str(sees_name)
        )
        tx.commit()


def _customer_details(ctx: AppContext, customer_id: str) -> list[str]:
    row = ctx.db.one("SELECT display_name, phone_e164, email FROM customers WHERE id = CAST(:c AS uuid)", c=customer_id)
    assert row is not None
    return [row["display_name"], row["phone_e164"], row["email"]]


def test_a_message_push_reaches_the_mitra_with_the_alias_not_the_name(
    isolated_ctx: AppContext, fcm: FcmStandIn
) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, push_message_preview=True)
    pair = active_session(ctx, customer_name=NAME)
    _register(ctx, "mitra", pair.mitra_id, "mitra-phone")
    _register(ctx, "customer", pair.customer_id, "customer-phone")
    assert notify.drain(ctx)
    fcm.requests.clear()

    sent = send("client", pair.customer, pair.session_id, "are you there?").json
    assert notify.drain(ctx)

    [message] = [r["message"] for r in fcm.messages]
    assert message["token"] == "mitra-phone"
    data = message["data"]
    assert data["type"] == "chat_message" and data["session_id"] == pair.session_id
    assert data["message_id"] == str(sent["id"]) and data["sender_type"] == "customer"
    assert data["sender_name"] == anonymity.alias(pair.customer_id)
    assert data["sender_name"].startswith("Customer ") and data["preview"] == "are you there?"
    assert message["android"]["collapse_key"] == "chat"  # one key for all chats: Android keeps four
    assert message["apns"]["headers"]["apns-collapse-id"] == f"chat:{pair.session_id}"
    assert message["android"]["notification"]["visibility"] == "PRIVATE"
    assert message["apns"]["payload"]["aps"]["alert"]["loc-args"] == [data["sender_name"], "are you there?"]
    # Nothing a mitra received names the customer.
    mitra_payloads = json.dumps(
        [
            message,
            receive("mitra", pair.mitra, pair.session_id).json,
            sessions("mitra", pair.mitra, view="current").json,
            sessions("mitra", pair.mitra, view="history").json,
        ]
    )
    for detail in _customer_details(ctx, pair.customer_id):
        assert detail not in mitra_payloads

    # The mitra's reply reaches the customer's device (with the mitra's display name).
    fcm.requests.clear()
    send("mitra", pair.mitra, pair.session_id, "yes!")
    assert notify.drain(ctx)
    [reply] = [r["message"] for r in fcm.messages]
    assert reply["token"] == "customer-phone" and reply["data"]["sender_type"] == "mitra"


def test_with_names_allowed_a_mitra_sees_the_display_name_but_never_phone_or_email(
    isolated_ctx: AppContext, fcm: FcmStandIn
) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, push_message_preview=True)
    _set_anonymity(ctx, 1)
    pair = active_session(ctx, customer_name=NAME)
    _register(ctx, "mitra", pair.mitra_id, "mitra-phone")
    assert notify.drain(ctx)
    fcm.requests.clear()
    send("client", pair.customer, pair.session_id, "hi")
    assert notify.drain(ctx)
    assert fcm.messages[0]["message"]["data"]["sender_name"] == NAME
    listed = sessions("mitra", pair.mitra, view="current").json["sessions"]
    assert listed[0]["customer"] == {"id": pair.customer_id, "display_name": NAME}
    _, phone, email = _customer_details(ctx, pair.customer_id)
    assert phone not in json.dumps(listed) and email not in json.dumps(listed)


def test_an_offer_shows_the_mitra_the_alias_in_its_list_and_nothing_of_the_customer_in_pushes(
    isolated_ctx: AppContext, fcm: FcmStandIn
) -> None:
    ctx = isolated_ctx
    [(mitra_id, mitra_auth)] = online_mitras(ctx, 1)
    _register(ctx, "mitra", mitra_id, "mitra-phone")
    customer_id, auth = customer(ctx)
    with ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE customers SET display_name = :n, phone_e164 = '+6281299990001', email = 'siti@mail.test'"
            " WHERE id = CAST(:c AS uuid)",
            n=NAME,
            c=customer_id,
        )
        tx.commit()
    sid = api("request", auth).json["id"]
    [offer] = sessions("mitra", mitra_auth, view="offers").json["sessions"]
    assert offer["customer"] == {"id": customer_id, "display_name": anonymity.alias(customer_id)}
    accepted = api("accept", mitra_auth, sid).json
    assert notify.drain(ctx)
    received = json.dumps([offer, accepted, [r["message"] for r in fcm.messages]])
    assert "pairing_offer" in received
    for detail in _customer_details(ctx, customer_id):
        assert detail not in received


def test_by_default_a_chat_push_carries_no_text_and_the_app_fetches_the_message(
    isolated_ctx: AppContext, fcm: FcmStandIn
) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx, customer_name=NAME)
    _register(ctx, "mitra", pair.mitra_id, "ios-mitra-phone")
    assert notify.drain(ctx)
    fcm.requests.clear()

    sent = send("client", pair.customer, pair.session_id, "my address is Jl. Melati 5").json
    assert notify.drain(ctx)

    [message] = fcm.accepted()
    assert message["data"] == {
        "type": "chat_message",
        "session_id": pair.session_id,
        "status": "active",
        "message_id": str(sent["id"]),
        "sender_type": "customer",
    }
    assert "Melati" not in json.dumps(message) and NAME not in json.dumps(message)
    assert message["apns"]["payload"]["aps"]["alert"]["loc-key"] == "push_chat_message_body"


def test_the_alias_is_stable_and_differs_between_customers() -> None:
    a, b = "6f1c0c3e-8f57-4c53-9b43-1f0f1f7c2a11", "0b7d2d52-3a7e-4d1e-8f53-9d2c7c1e5b22"
    assert anonymity.alias(a) == anonymity.alias(a)
    assert anonymity.alias(a) != anonymity.alias(b)
    assert anonymity.customer_for_mitra(a, "Real Name", False) == {"id": a, "display_name": anonymity.alias(a)}
    assert anonymity.customer_for_mitra(a, "Real Name", True) == {"id": a, "display_name": "Real Name"}
