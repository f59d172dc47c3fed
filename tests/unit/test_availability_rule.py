"""The available rule: online, not deactivated, under capacity (own maximum, else the default)."""

import itertools

import pytest

from shared.availability.truth import UNSET_DEFAULT_MAX, effective_max, is_available


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


def test_the_effective_maximum_is_the_override_zero_included_else_the_default() -> None:
    assert effective_max(0, 3) == 0
    assert effective_max(2, 3) == 2
    assert effective_max(None, 3) == 3


def test_without_a_configured_default_a_mitra_holds_one_session() -> None:
    assert UNSET_DEFAULT_MAX == 1
    assert is_available(True, True, used=0, max_override=None, default_max=UNSET_DEFAULT_MAX)
    assert not is_available(True, True, used=1, max_override=None, default_max=UNSET_DEFAULT_MAX)
