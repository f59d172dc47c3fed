"""Chat messages through the real entry points (docs/chat.md): send, retry, receive, read markers, limits."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from shared.context import AppContext
from tests.support.chat_support import active_session, mark_read, receive, send
from tests.support.pairing_support import api, customer
from tests.support.tokens import bearer, cc_token


def _bodies(resp) -> list[str]:
    return [m["body"] for m in resp.json["messages"] if m["sender_type"] != "system"]


def test_customer_and_mitra_exchange_messages_both_ways_in_order(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)

    first = send("client", pair.customer, pair.session_id, "  hi there \n")
    assert first.status_code == 201, first.json
    assert (first.json["sender_type"], first.json["sender_id"], first.json["body"]) == (
        "customer",
        pair.customer_id,
        "hi there",
    )
    reply = send("mitra", pair.mitra, pair.session_id, "hello!\tHow can I help?")
    assert reply.status_code == 201, reply.json

    as_mitra = receive("mitra", pair.mitra, pair.session_id)
    as_customer = receive("client", pair.customer, pair.session_id)
    assert _bodies(as_mitra) == _bodies(as_customer) == ["hi there", "hello!\tHow can I help?"]
    ids = [m["id"] for m in as_mitra.json["messages"]]
    assert ids == sorted(ids) and as_mitra.json["next_after"] == ids[-1]
    assert as_mitra.json["session_status"] == "active"

    later = receive("client", pair.customer, pair.session_id, after=first.json["id"])
    assert _bodies(later) == ["hello!\tHow can I help?"]


def test_lifecycle_transitions_appear_as_system_messages(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    assert api("extend", pair.customer, pair.session_id, json={"minutes": 10}).status_code == 200
    # The extension shows once it is paid (docs/payments.md); staff confirm it here.
    assert api("pay", bearer(cc_token(isolated_ctx)), pair.session_id).status_code == 200
    assert api("end", pair.customer, pair.session_id).status_code == 200

    got = receive("mitra", pair.mitra, pair.session_id).json
    system = [(m["body"], m["detail"]) for m in got["messages"] if m["sender_type"] == "system"]
    assert [body for body, _ in system] == ["accepted", "active", "extended", "ended"]
    assert system[2][1]["minutes"] == 10 and system[3][1]["end_reason"] == "customer_ended"
    assert got["session_status"] == "ended"


def test_a_retried_send_returns_the_first_message_with_200(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    cmid = str(uuid.uuid4())
    first = send("client", pair.customer, pair.session_id, "once", cmid)
    again = send("client", pair.customer, pair.session_id, " once\r\n", cmid)  # the same text once cleaned
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json == first.json
    assert _bodies(receive("client", pair.customer, pair.session_id)) == ["once"]
    # The same client id from the other party is its own message.
    assert send("mitra", pair.mitra, pair.session_id, "mine", cmid).status_code == 201


def test_a_client_message_id_reused_with_another_body_is_409_and_keeps_the_first(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    cmid = str(uuid.uuid4())
    assert send("client", pair.customer, pair.session_id, "once", cmid).status_code == 201
    edited = send("client", pair.customer, pair.session_id, "once (edited retry)", cmid)
    assert edited.status_code == 409 and edited.json["error"]["code"] == "CLIENT_MESSAGE_ID_REUSED"
    assert _bodies(receive("client", pair.customer, pair.session_id)) == ["once"]


@pytest.mark.parametrize(
    "body",
    [
        "\u200b",  # zero-width space
        "\ufeff",  # byte order mark
        "\u3164",  # Hangul filler
        "\u200b \ufeff\u3164\u2800\u200d\n\u3000",  # only invisible things and spacing
        "\u0301",  # a lone combining mark
    ],
)
def test_a_body_with_nothing_visible_is_400_naming_body(isolated_ctx: AppContext, body: str) -> None:
    pair = active_session(isolated_ctx)
    resp = send("client", pair.customer, pair.session_id, body)
    assert resp.status_code == 400 and resp.json["error"]["field"] == "body", resp.json


@pytest.mark.parametrize(
    "body",
    [
        "pay here \u202etxt.exe",  # right-to-left override
        "a\u202ab",
        "a\u202cb",
        "a\u2066b\u2069",  # isolates
        "hi\U000e0041\U000e0042",  # tag characters smuggle invisible text
        "x\U000e007f",
        "del\u007f",  # DEL
        "c1\u0085c1",  # a C1 control (NEL; at either end it is whitespace and trimmed)
        "c1\u009f",
    ],
)
def test_bidi_controls_tag_characters_and_c1_controls_are_400_naming_body(isolated_ctx: AppContext, body: str) -> None:
    pair = active_session(isolated_ctx)
    resp = send("client", pair.customer, pair.session_id, body)
    assert resp.status_code == 400 and resp.json["error"]["field"] == "body", resp.json


def test_ordinary_text_in_any_script_with_emoji_is_accepted(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    for body in ("Halo kak 👋", "مرحبا\u200f!", "한국어 ㅋㅋ", "👨\u200d👩\u200d👧", "é"):
        resp = send("client", pair.customer, pair.session_id, body)
        assert resp.status_code == 201 and resp.json["body"] == body, (body, resp.json)


def test_a_third_party_gets_404_for_every_chat_route(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    _, stranger = customer(isolated_ctx)
    other_mitra = active_session(isolated_ctx).mitra
    assert send("client", stranger, pair.session_id, "hi").status_code == 404
    assert receive("client", stranger, pair.session_id).status_code == 404
    assert mark_read("client", stranger, pair.session_id, 1).status_code == 404
    resp = send("mitra", other_mitra, pair.session_id, "hi")
    assert (resp.status_code, resp.json["error"]["code"]) == (404, "SESSION_NOT_FOUND")
    assert receive("mitra", other_mitra, pair.session_id).status_code == 404
    assert send("client", pair.customer, str(uuid.uuid4()), "hi").status_code == 404


def test_sending_to_a_session_that_is_not_active_is_409_and_history_stays_readable(
    isolated_ctx: AppContext,
) -> None:
    pair = active_session(isolated_ctx)
    cmid = str(uuid.uuid4())
    assert send("client", pair.customer, pair.session_id, "before the end", cmid).status_code == 201
    assert api("end", pair.customer, pair.session_id).status_code == 200

    for side in ("client", "mitra"):
        resp = send(side, pair.auth(side), pair.session_id, "too late")
        assert resp.status_code == 409, resp.json
        assert resp.json["error"]["code"] == "SESSION_NOT_ACTIVE"
        assert resp.json["error"]["current_status"] == "ended"
        history = receive(side, pair.auth(side), pair.session_id)
        assert history.status_code == 200
        assert _bodies(history) == ["before the end"]
    # A retry of a message sent before the end still answers with that message.
    assert send("client", pair.customer, pair.session_id, "before the end", cmid).status_code == 200


def test_a_pending_payment_session_refuses_messages(isolated_ctx: AppContext) -> None:
    from tests.support.pairing_support import online_mitras

    [(_, mitra_auth)] = online_mitras(isolated_ctx, 1)
    _, auth = customer(isolated_ctx)
    sid = api("request", auth).json["id"]
    assert api("accept", mitra_auth, sid).status_code == 200
    resp = send("client", auth, sid, "hi")
    assert (resp.status_code, resp.json["error"]["code"]) == (409, "SESSION_NOT_ACTIVE")


def test_invalid_bodies_are_400_naming_the_field(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    cases = {
        "   ": "body",
        "x" * 2001: "body",
        "bell\x07": "body",
        "nul\x00": "body",
        "cr\ronly": "body",
    }
    for body, field in cases.items():
        resp = send("client", pair.customer, pair.session_id, body)
        assert (resp.status_code, resp.json["error"]["field"]) == (400, field), body
    ok = send("client", pair.customer, pair.session_id, "x" * 2000 + "   ")
    assert ok.status_code == 201 and len(ok.json["body"]) == 2000
    assert send("client", pair.customer, pair.session_id, "windows\r\nline").json["body"] == "windows\nline"
    from tests.support.auth_support import client

    app = client("chat_client_send")
    url = f"/api/client/chat-sessions/{pair.session_id}/messages"
    assert app.post(url, headers=pair.customer, json={"body": "x"}).json["error"]["field"] == "client_message_id"
    bad = app.post(url, headers=pair.customer, json={"client_message_id": "nope", "body": "x"})
    assert (bad.status_code, bad.json["error"]["field"]) == (400, "client_message_id")
    bad_queries = (({"wait": 26}, "wait"), ({"after": -1}, "after"), ({"limit": 0}, "limit"), ({"wait": "x"}, "wait"))
    for query, field in bad_queries:
        resp = receive("client", pair.customer, pair.session_id, **query)
        assert (resp.status_code, resp.json["error"]["field"]) == (400, field)


def test_a_mitra_token_is_refused_on_the_customer_routes(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    assert send("client", pair.mitra, pair.session_id, "hi").status_code == 403
    assert receive("mitra", pair.customer, pair.session_id).status_code == 403
    assert receive("mitra", {}, pair.session_id).status_code == 401


def test_sends_over_the_per_sender_limit_get_429_with_retry_after(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    with isolated_ctx.db.transaction() as tx:
        tx.execute("UPDATE app_config SET value = '3' WHERE key = 'chat_max_messages_per_minute'")
        tx.commit()
    codes = [send("client", pair.customer, pair.session_id, f"m{i}").status_code for i in range(4)]
    assert codes == [201, 201, 201, 429]
    limited = send("client", pair.customer, pair.session_id, "again")
    assert limited.json["error"]["code"] == "RATE_LIMITED"
    assert 1 <= limited.json["error"]["retry_after_seconds"] <= 60
    # The limit is per sender: the mitra still talks.
    assert send("mitra", pair.mitra, pair.session_id, "hi").status_code == 201


def test_read_markers_move_forward_only_and_show_to_the_peer(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    ids = [send("client", pair.customer, pair.session_id, f"m{i}").json["id"] for i in range(3)]
    assert receive("client", pair.customer, pair.session_id).json["peer_last_read_id"] == 0

    assert mark_read("mitra", pair.mitra, pair.session_id, ids[1]).json["last_read_id"] == ids[1]
    assert mark_read("mitra", pair.mitra, pair.session_id, ids[0]).json["last_read_id"] == ids[1]
    assert receive("client", pair.customer, pair.session_id).json["peer_last_read_id"] == ids[1]
    # Beyond the last message: clamped to it.
    assert mark_read("mitra", pair.mitra, pair.session_id, ids[2] + 1000).json["last_read_id"] == ids[2]
    assert receive("mitra", pair.mitra, pair.session_id).json["peer_last_read_id"] == 0
    assert mark_read("mitra", pair.mitra, pair.session_id, "x").status_code == 400


def test_a_waiting_reader_wakes_on_a_send_and_on_the_end(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    after = receive("client", pair.customer, pair.session_id).json["next_after"]
    got: dict[str, object] = {}

    def wait(key: str, since: int) -> None:
        started = time.monotonic()
        resp = receive("client", pair.customer, pair.session_id, after=since, wait=10)
        got[key] = (resp.json, time.monotonic() - started)

    waiter = threading.Thread(target=wait, args=("send", after))
    waiter.start()
    time.sleep(0.5)
    sent = send("mitra", pair.mitra, pair.session_id, "ping").json
    waiter.join(timeout=15)
    body, waited = got["send"]  # type: ignore[misc]
    assert [m["id"] for m in body["messages"]] == [sent["id"]]
    assert waited < 5

    waiter = threading.Thread(target=wait, args=("end", sent["id"]))
    waiter.start()
    time.sleep(0.5)
    assert api("mitra_end", pair.mitra, pair.session_id).status_code == 200
    waiter.join(timeout=15)
    body, waited = got["end"]  # type: ignore[misc]
    assert body["session_status"] == "ended"
    assert [m["body"] for m in body["messages"]] == ["ended"]
    assert waited < 5


def test_a_wait_with_nothing_new_answers_empty_when_it_runs_out(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    after = receive("client", pair.customer, pair.session_id).json["next_after"]
    started = time.monotonic()
    resp = receive("client", pair.customer, pair.session_id, after=after, wait=1)
    assert resp.json["messages"] == [] and resp.json["next_after"] == after
    assert time.monotonic() - started >= 1
