"""Opening a long chat: the latest messages first, then older pages with `before` (docs/chat.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.chat_support import active_session, receive, send
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras


def _bodies(resp) -> list[str]:
    return [m["body"] for m in resp.json["messages"] if m["sender_type"] != "system"]


def test_before_zero_returns_the_latest_messages_of_both_sides_oldest_first(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    for i in range(7):
        side, headers = ("client", pair.customer) if i % 2 == 0 else ("mitra", pair.mitra)
        assert send(side, headers, pair.session_id, f"m{i}").status_code == 201

    latest = receive("mitra", pair.mitra, pair.session_id, before=0, limit=3)
    assert latest.status_code == 200, latest.json
    assert _bodies(latest) == ["m4", "m5", "m6"]
    ids = [m["id"] for m in latest.json["messages"]]
    assert latest.json["next_before"] == ids[0] and latest.json["next_after"] == ids[-1]

    older = receive("mitra", pair.mitra, pair.session_id, before=latest.json["next_before"], limit=3)
    assert _bodies(older) == ["m1", "m2", "m3"]
    rest = receive("client", pair.customer, pair.session_id, before=older.json["next_before"], limit=3)
    # The oldest page: the last customer message and the system messages of accept and payment.
    assert [m["body"] for m in rest.json["messages"]] == ["accepted", "active", "m0"]
    assert rest.json["next_before"] is None  # nothing older


def test_the_latest_page_then_continues_forward_with_after(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    assert send("client", pair.customer, pair.session_id, "old").status_code == 201
    latest = receive("mitra", pair.mitra, pair.session_id, before=0, limit=1)
    assert _bodies(latest) == ["old"]
    assert send("client", pair.customer, pair.session_id, "new").status_code == 201
    forward = receive("mitra", pair.mitra, pair.session_id, after=latest.json["next_after"])
    assert _bodies(forward) == ["new"]


def test_before_on_a_session_without_messages_is_an_empty_page(isolated_ctx: AppContext) -> None:
    online_mitras(isolated_ctx, 1)
    _, customer_auth = customer(isolated_ctx)
    session = api("request", customer_auth).json
    got = receive("client", customer_auth, session["id"], before=0)
    assert got.status_code == 200
    assert got.json["messages"] == [] and got.json["next_before"] is None and got.json["next_after"] == 0
    assert got.json["session_status"] == "searching"


@pytest.mark.parametrize(
    "query",
    [{"before": 0, "after": 5}, {"before": 0, "wait": 5}, {"before": -1}, {"before": "x"}],
    ids=["with-after", "with-wait", "negative", "not-a-number"],
)
def test_before_with_after_or_wait_or_a_bad_value_is_a_400(isolated_ctx: AppContext, query: dict) -> None:
    pair = active_session(isolated_ctx)
    got = receive("client", pair.customer, pair.session_id, **query)
    assert got.status_code == 400, got.json
    assert got.json["error"]["code"] == "VALIDATION_FAILED"


def test_before_of_someone_elses_session_is_404(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    _, stranger = customer(isolated_ctx)
    got = receive("client", stranger, pair.session_id, before=0)
    assert got.status_code == 404 and got.json["error"]["code"] == "SESSION_NOT_FOUND"


# ---- one session as the mitra sees it; the customer's view names its mitra --------------------


def _mitra_get(headers: dict[str, str], session_id: str):
    return client("chat_mitra_session").get(f"/api/mitra/chat-sessions/{session_id}", headers=headers)


def test_the_mitra_reads_the_session_it_holds_with_the_customer_alias(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx, customer_name="Siti Rahma")
    assert send("client", pair.customer, pair.session_id, "hello").status_code == 201
    got = _mitra_get(pair.mitra, pair.session_id)
    assert got.status_code == 200, got.json
    body = got.json
    assert (body["id"], body["status"], body["mitra_id"]) == (pair.session_id, "active", pair.mitra_id)
    assert body["customer"]["id"] == pair.customer_id
    assert body["customer"]["display_name"].startswith("Customer ")  # the anonymity rule, not the name
    assert "Siti" not in got.get_data(as_text=True)
    assert body["last_message_id"] == receive("mitra", pair.mitra, pair.session_id).json["next_after"]


def test_an_offered_mitra_reads_the_offer_and_others_get_404(isolated_ctx: AppContext) -> None:
    [(_, offered), (_, other)] = online_mitras(isolated_ctx, 2)
    _, customer_auth = customer(isolated_ctx)
    session = api("request", customer_auth).json  # blasts both mitras
    got = _mitra_get(offered, session["id"])
    assert got.status_code == 200, got.json
    assert got.json["status"] == "searching" and got.json["offer_expires_at"]
    assert api("accept", offered, session["id"]).status_code == 200
    # The mitra that lost the offer no longer sees the session; a stranger never did.
    assert _mitra_get(other, session["id"]).status_code == 404
    [(_, stranger)] = online_mitras(isolated_ctx, 1)
    missing = _mitra_get(stranger, session["id"])
    assert missing.status_code == 404 and missing.json["error"]["code"] == "SESSION_NOT_FOUND"


def test_the_mitra_session_get_settles_an_overdue_session(isolated_ctx: AppContext, clock: FakeClock) -> None:
    pair = active_session(isolated_ctx)
    with isolated_ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE chat_sessions SET expires_at = :at WHERE id = CAST(:s AS uuid)",
            at=clock() - timedelta(seconds=1),
            s=pair.session_id,
        )
        tx.commit()
    got = _mitra_get(pair.mitra, pair.session_id)
    assert (got.json["status"], got.json["end_reason"]) == ("ended", "expired")


def test_the_customer_session_get_names_its_mitra_like_the_list(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    got = api("get", pair.customer, pair.session_id)
    assert got.status_code == 200
    listed = client("chat_client_sessions").get("/api/client/chat-sessions", headers=pair.customer).json
    assert got.json["mitra"] == listed["sessions"][0]["mitra"]
    assert got.json["mitra"]["id"] == pair.mitra_id
