"""Pairing pushes through the real firebase-admin against the loopback FCM v1 stand-in:
the blast fans out data messages to every offered mitra's devices, and the devices FCM
reports UNREGISTERED are deleted from Postgres, end to end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.context import AppContext
from tests.fcm_standin import FcmStandIn, fcm_installed
from tests.pairing_support import api, customer, online_mitras


@pytest.fixture
def fcm(isolated_ctx: AppContext) -> Iterator[FcmStandIn]:
    with fcm_installed(isolated_ctx) as standin:
        yield standin


def _register(ctx: AppContext, user_type: str, user_id: str, *tokens: str) -> None:
    with ctx.db.transaction() as tx:
        for token in tokens:
            tx.execute(
                "INSERT INTO devices (user_type, user_id, fcm_token, platform)"
                " VALUES (:t, CAST(:u AS uuid), :tok, 'android')",
                t=user_type,
                u=user_id,
                tok=token,
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

    offers = [r["message"] for r in fcm.messages]
    assert sorted(m["token"] for m in offers) == sorted(
        [f"live-m{i}" for i in range(3)] + [f"dead-m{i}" for i in range(3)]
    )
    assert {m["data"]["type"] for m in offers} == {"pairing_offer"}
    assert {m["data"]["session_id"] for m in offers} == {session["id"]}
    assert all(m["android"]["priority"] == "high" and "notification" not in m for m in offers)
    assert _tokens(ctx) == {"live-m0", "live-m1", "live-m2", "live-c", "dead-c"}

    fcm.requests.clear()
    winner, winner_auth = mitras[0]
    assert api("accept", winner_auth, session["id"]).status_code == 200

    by_token = {r["message"]["token"]: r["message"]["data"] for r in fcm.messages}
    assert by_token["live-c"]["type"] == "session_accepted"
    assert by_token["live-c"]["mitra_id"] == winner
    assert {by_token[f"live-m{i}"]["type"] for i in (1, 2)} == {"offer_closed"}
    assert _tokens(ctx) == {"live-m0", "live-m1", "live-m2", "live-c"}
