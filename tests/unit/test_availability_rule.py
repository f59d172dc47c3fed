"""The available rule: online, not deactivated, under capacity (own maximum, else the default)."""

import itertools

import pytest

from shared.availability.truth import is_available


@pytest.mark.parametrize(("online", "active"), [(False, True), (True, False), (False, False)])
def test_offline_or_deactivated_mitras_are_never_available(online: bool, active: bool) -> None:
    assert not is_available(online, active, used=0, max_override=5, default_max=5)


def test_the_mitras_own_maximum_wins_over_the_default() -> None:
    assert is_available(True, True, used=2, max_override=3, default_max=1)
    assert not is_available(True, True, used=1, max_override=1, default_max=3)


def test_an_override_of_zero_is_a_maximum_not_a_missing_value() -> None:
    assert not is_available(True, True, used=0, max_override=0, default_max=3)


def test_without_an_override_the_default_decides() -> None:
    assert is_available(True, True, used=0, max_override=None, default_max=1)
    assert not is_available(True, True, used=1, max_override=None, default_max=1)


def test_available_exactly_while_used_is_below_the_effective_maximum() -> None:
    for used, override, default in itertools.product(range(4), (None, 0, 1, 2, 3), (1, 2, 3)):
        effective = default if override is None else override
        assert is_available(True, True, used, override, default) is (used < effective)
