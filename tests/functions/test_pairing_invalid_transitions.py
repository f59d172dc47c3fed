"""Every transition the state machine forbids is 409 INVALID_TRANSITION naming the current status,
and changes nothing (no row change, no event)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.context import AppContext
from shared.sessions.settle import expire_due_sessions
from tests.support.helpers import FakeClock
from tests.support.pairing_support import api, customer, events, online_mitras
from tests.support.tokens import bearer, cc_token

STATES = ("searching", "pending_payment", "active", "ended", "expired", "cancelled")

# action -> the states it must refuse (mitra actions are made by the offered/holding mitra).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "cancel": ("pending_payment", "active", "ended", "expired", "cancelled"),
    "extend": ("searching", "pending_payment", "ended", "expired", "cancelled"),
    "end": ("searching", "ended", "expired", "cancelled"),
    "reroute": ("searching", "ended", "expired", "cancelled"),
    "accept": ("ended", "expired", "cancelled"),
    "decline": ("pending_payment", "active", "ended", "expired", "cancelled"),
    "mitra_end": ("ended", "expired"),
    "pay": ("searching", "ended", "expired", "cancelled"),
}
CASES = [(action, state) for action, states in FORBIDDEN.items() for state in states]
# Refusals that name why more precisely than INVALID_TRANSITION: the deadline has passed.
TOO_LATE = {("pay", "expired"): "PAYMENT_DEADLINE_PASSED"}


def _session_in(ctx: AppContext, clock: FakeClock, state: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """A session driven through the real routes into `state`: (id, customer auth, mitra auth)."""
    [(_, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth).json["id"]
    if state == "cancelled":
        api("cancel", auth, sid)
    if state in ("pending_payment", "active", "ended", "expired"):
        assert api("accept", mitra_auth, sid).status_code == 200
    if state in ("active", "ended"):
        assert api("pay", bearer(cc_token(ctx)), sid).status_code == 200
    if state == "ended":
        api("end", auth, sid)
    if state == "expired":  # unpaid past its deadline, moved by the sweep
        clock.advance(ctx.settings.payment_timeout_seconds + 1)
        assert expire_due_sessions(ctx)["expired_unpaid"] == 1
    assert api("get", auth, sid).json["status"] == state
    return sid, auth, mitra_auth


@pytest.mark.parametrize(("action", "state"), CASES)
def test_forbidden_transition_is_409_naming_the_current_status(
    isolated_ctx: AppContext, clock: FakeClock, action: str, state: str
) -> None:
    ctx = isolated_ctx
    sid, auth, mitra_auth = _session_in(ctx, clock, state)
    before: dict[str, Any] = api("get", auth, sid).json
    trail = events(ctx, sid)
    caller = {"accept": mitra_auth, "decline": mitra_auth, "mitra_end": mitra_auth}.get(action, auth)
    if action == "pay":
        caller = bearer(cc_token(ctx))

    resp = api(action, caller, sid, json={"minutes": 10} if action == "extend" else None)

    assert resp.status_code == 409, resp.json
    assert resp.json["error"]["code"] == TOO_LATE.get((action, state), "INVALID_TRANSITION")
    assert resp.json["error"]["current_status"] == state
    assert api("get", auth, sid).json == before
    assert events(ctx, sid) == trail


def test_the_matrix_covers_every_action_and_state() -> None:
    assert set(FORBIDDEN) == {"cancel", "extend", "end", "reroute", "accept", "decline", "mitra_end", "pay"}
    assert all(set(states) <= set(STATES) for states in FORBIDDEN.values())
