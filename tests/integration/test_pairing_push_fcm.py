"""Pairing pushes through the real firebase-admin against the strict loopback FCM v1 stand-in:
offers reach iPhones and Android phones as visible alerts that expire at the offer's deadline,
every kind of dead token is deleted from Postgres after one send, and a slow FCM never holds
the request that caused the push."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from shared import notify, push
from shared.context import AppContext
from tests.support.fcm_standin import FcmStandIn, fcm_installed
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras


@pytest.fixture
def fcm(isolated_ctx: AppContext) -> Iterator[FcmStandIn]:
    with fcm_installed(isolated_ctx) as standin:
        yield standin


def _register(ctx: AppContext, user_type: str, user_id: str, *tokens: str) -> None:
    with ctx.db.transaction() as tx:
        for token in tokens:
            tx.execute(
                "INSERT INTO devices (user_type, user_id, fcm_token, platform) VALUES (:t, CAST(:u AS uuid), :tok, :p)",
                t=user_type,
                u=user_id,
                tok=token,
                p="ios" if token.startswith("ios-") else "android",
            )
        tx.commit()


def _tokens(ctx: AppContext) -> set[str]:
    return {r["fcm_token"] for r in ctx.db.rows("SELECT fcm_token FROM devices")}


def test_blast_and_accept_push_through_fcm_and_unregistered_devices_are_deleted(
    isolated_ctx: AppContext, fcm: FcmStandIn
) -> None:
    ctx = isolated_ctx
    mitras = online_mitras(ctx, 3)
    for i, (mitra_id, _) in enumerate(mitras):
        _register(ctx, "mitra", mitra_id, f"live-m{i}", f"dead-m{i}")
    customer_id, auth = customer(ctx)
    _register(ctx, "customer", customer_id, "live-c", "dead-c")

    session = api("request", auth).json
    assert notify.drain(ctx)

    offers = [r["message"] for r in fcm.messages]
    assert sorted(m["token"] for m in offers) == sorted(
        [f"live-m{i}" for i in range(3)] + [f"dead-m{i}" for i in range(3)]
    )
    assert {m["data"]["type"] for m in offers} == {"pairing_offer"}
    assert {m["data"]["session_id"] for m in offers} == {session["id"]}
    assert all(m["android"]["priority"] == "high" and m["android"]["notification"] for m in offers)
    assert _tokens(ctx) == {"live-m0", "live-m1", "live-m2", "live-c", "dead-c"}

    fcm.requests.clear()
    winner, winner_auth = mitras[0]
    assert api("accept", winner_auth, session["id"]).status_code == 200
    assert notify.drain(ctx)

    by_token = {r["message"]["token"]: r["message"]["data"] for r in fcm.messages}
    assert by_token["live-c"]["type"] == "session_accepted"
    assert by_token["live-c"]["mitra_id"] == winner
    assert {by_token[f"live-m{i}"]["type"] for i in (1, 2)} == {"offer_closed"}
    assert _tokens(ctx) == {"live-m0", "live-m1", "live-m2", "live-c"}


def test_an_offer_reaches_an_iphone_as_an_alert_that_expires_at_the_offer_deadline(
    isolated_ctx: AppContext, fcm: FcmStandIn
) -> None:
    ctx = isolated_ctx
    [(ios_mitra, _), (android_mitra, _)] = online_mitras(ctx, 2)
    _register(ctx, "mitra", ios_mitra, "ios-m")
    _register(ctx, "mitra", android_mitra, "android-m")
    _, auth = customer(ctx)

    api("request", auth)
    assert notify.drain(ctx)

    assert fcm.statuses() == {"ios-m": 200, "android-m": 200}
    deadline = ctx.now() + timedelta(seconds=ctx.settings.pairing_timeout_seconds)  # the clock stood still
    for offer in fcm.accepted():
        assert datetime.fromisoformat(offer["data"]["offer_expires_at"]) == deadline
        assert offer["apns"]["headers"]["apns-expiration"] == str(int(deadline.timestamp()))
        assert offer["android"]["ttl"] == f"{ctx.settings.pairing_timeout_seconds}s"
        assert offer["apns"]["headers"]["apns-push-type"] == "alert"
        assert offer["apns"]["payload"]["aps"]["alert"]["loc-key"] == "push_pairing_offer_body"
        assert offer["android"]["collapse_key"] == "offer"


def test_a_dead_token_of_each_dead_kind_is_deleted_after_one_send(isolated_ctx: AppContext, fcm: FcmStandIn) -> None:
    ctx = isolated_ctx
    [(mitra_id, _)] = online_mitras(ctx, 1)
    dead = {"dead-1", "ios-dead-2", "mismatch-1", "ios-mismatch-2", "bad-1", "ios-bad-2"}
    _register(ctx, "mitra", mitra_id, "live-1", "ios-live-2", "unavailable-1", *dead)
    _, auth = customer(ctx)
    fcm.retry_after = "0"

    api("request", auth)
    assert notify.drain(ctx)

    assert len(fcm.statuses()) == 9  # one send each
    assert _tokens(ctx) == {"live-1", "ios-live-2", "unavailable-1"}  # 503 is transient: kept


def test_accept_answers_while_fcm_has_not_answered_yet(isolated_ctx: AppContext, fcm: FcmStandIn) -> None:
    ctx = isolated_ctx
    [(_mitra_id, mitra_auth)] = online_mitras(ctx, 1)
    customer_id, auth = customer(ctx)
    _register(ctx, "customer", customer_id, "ios-c", "android-c")
    session = api("request", auth).json
    assert notify.drain(ctx)
    fcm.hold = threading.Event()

    assert api("accept", mitra_auth, session["id"]).status_code == 200

    # The answer came first; FCM is still holding the pushes (sent inline, they would have
    # waited out the hold before accept could answer, and none would be waiting now).
    deadline = time.monotonic() + 5
    while fcm.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = fcm.waiting
    fcm.hold.set()
    assert notify.drain(ctx)
    assert waiting >= 1
    assert {m["token"] for m in fcm.accepted()} >= {"ios-c", "android-c"}


def test_a_full_queue_drops_the_new_push_and_never_waits(isolated_ctx: AppContext, fcm: FcmStandIn) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, push_queue_size=1, push_workers=1)
    [(mitra_id, _)] = online_mitras(ctx, 1)
    _register(ctx, "mitra", mitra_id, "live-1")
    fcm.hold = threading.Event()
    data = {"type": "offer_closed", "session_id": "s", "status": "accepted"}

    assert notify.send(ctx, "mitra", [mitra_id], data)  # taken by the one worker, held by FCM
    deadline = time.monotonic() + 5
    while fcm.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert notify.send(ctx, "mitra", [mitra_id], data)  # waits in the queue
    assert not notify.send(ctx, "mitra", [mitra_id], data)  # the queue is full: dropped at once

    fcm.hold.set()
    assert notify.drain(ctx)
    assert [a["status"] for a in fcm.answers] == [200, 200]


def test_a_push_whose_expiry_passed_in_the_queue_is_not_sent(
    isolated_ctx: AppContext, fcm: FcmStandIn, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    [(mitra_id, _)] = online_mitras(ctx, 1)
    _register(ctx, "mitra", mitra_id, "live-1")
    deadline = ctx.now() + timedelta(seconds=120)
    offer = push.message("pairing_offer", {"session_id": "s", "offer_expires_at": deadline.isoformat()}, ctx.now())
    clock.advance(121)

    result = notify.deliver(ctx, "mitra", [mitra_id], offer)

    assert (result.sent, result.failed, fcm.requests) == (0, 0, [])


def test_at_shutdown_the_queue_drains_for_a_while_then_drops_what_is_left(
    isolated_ctx: AppContext, fcm: FcmStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, push_workers=1)
    monkeypatch.setattr(notify, "SHUTDOWN_DRAIN_SECONDS", 0.2)
    [(mitra_id, _)] = online_mitras(ctx, 1)
    _register(ctx, "mitra", mitra_id, "live-1")
    fcm.hold = threading.Event()
    data = {"type": "offer_closed", "session_id": "s", "status": "accepted"}
    for _ in range(3):
        assert notify.send(ctx, "mitra", [mitra_id], data)
    deadline = time.monotonic() + 5
    while fcm.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert notify.outbox(ctx).drop_left() == 2  # one held by FCM, two never started
    fcm.hold.set()
    assert notify.drain(ctx)
