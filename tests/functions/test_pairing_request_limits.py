"""One customer cannot spam the mitras: session requests are limited per customer, and a cancel
is followed by a cooldown before the next request."""

from __future__ import annotations

from shared import app_config
from shared.context import AppContext
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import _token, bearer


def _offers(ctx: AppContext, customer_id: str) -> int:
    return int(
        ctx.db.scalar(
            "SELECT count(*) FROM pairing_offers o JOIN chat_sessions s ON s.id = o.session_id"
            " WHERE s.customer_id = CAST(:c AS uuid)",
            c=customer_id,
        )
    )


def test_a_request_right_after_a_cancel_waits_for_the_cooldown(isolated_ctx: AppContext, clock: FakeClock) -> None:
    online_mitras(isolated_ctx, 3)
    customer_id, auth = customer(isolated_ctx)
    cooldown = app_config.get(isolated_ctx, "session_cancel_cooldown_seconds")
    first = api("request", auth).json["id"]
    assert api("cancel", auth, first).status_code == 200
    again = api("request", auth)
    assert again.status_code == 429 and again.json["error"]["code"] == "CANCEL_COOLDOWN"
    assert 0 < again.json["error"]["retry_after_seconds"] <= cooldown
    assert _offers(isolated_ctx, customer_id) == 3  # the refused request pushed nothing
    clock.advance(cooldown)
    assert api("request", auth).status_code == 201


def test_request_and_cancel_cycles_stop_at_the_hourly_limit(isolated_ctx: AppContext, clock: FakeClock) -> None:
    app_config.put(isolated_ctx, "session_requests_per_customer_per_hour", 3, "test")
    online_mitras(isolated_ctx, 2)
    customer_id, auth = customer(isolated_ctx)
    _, other = customer(isolated_ctx)
    statuses = []
    for _ in range(5):
        resp = api("request", auth)
        statuses.append(resp.status_code)
        if resp.status_code == 201:
            assert api("cancel", auth, resp.json["id"]).status_code == 200
        clock.advance(app_config.get(isolated_ctx, "session_cancel_cooldown_seconds"))
    assert statuses == [201, 201, 201, 429, 429]
    assert api("request", auth).json["error"]["code"] == "RATE_LIMITED"
    assert _offers(isolated_ctx, customer_id) == 3 * 2
    assert api("request", other).status_code == 201  # another customer is not affected
    clock.advance(3600)
    online_mitras(isolated_ctx, 1)  # the first ones have gone stale meanwhile
    fresh = bearer(_token(isolated_ctx, "customer", customer_id)[0])  # the first token has expired too
    assert api("request", fresh).status_code == 201
