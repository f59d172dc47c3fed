"""The chat-session state machine (docs/pairing.md), as the services check it before each UPDATE."""

import itertools

import pytest

from shared.sessions.states import TRANSITIONS, next_status

STATUSES = ("searching", "pending_payment", "active", "cancelled", "ended", "expired")

# docs/pairing.md, written out independently of the table under test.
ALLOWED = {
    ("accept", "searching"): "pending_payment",
    ("decline", "searching"): "searching",
    ("cancel", "searching"): "cancelled",
    ("expire", "searching"): "expired",
    ("pay", "pending_payment"): "active",
    ("end", "pending_payment"): "ended",
    ("reroute", "pending_payment"): "searching",
    ("expire", "pending_payment"): "expired",
    ("extend", "active"): "active",
    ("end", "active"): "ended",
    ("reroute", "active"): "searching",
}


@pytest.mark.parametrize(("action", "status"), list(itertools.product(sorted(TRANSITIONS), STATUSES)))
def test_every_action_from_every_status_is_allowed_exactly_as_the_spec_says(action: str, status: str) -> None:
    assert next_status(action, status) == ALLOWED.get((action, status))


def test_the_spec_names_no_action_the_table_lacks() -> None:
    assert {action for action, _ in ALLOWED} == set(TRANSITIONS)


@pytest.mark.parametrize("final", ["cancelled", "ended", "expired"])
def test_final_statuses_have_no_way_out(final: str) -> None:
    assert all(next_status(action, final) is None for action in TRANSITIONS)


def test_an_unknown_session_allows_nothing() -> None:
    assert all(next_status(action, None) is None for action in TRANSITIONS)


def test_accepting_a_session_that_was_already_paid_makes_it_active() -> None:
    assert next_status("accept", "searching", paid=True) == "active"
    assert next_status("accept", "pending_payment", paid=True) is None
