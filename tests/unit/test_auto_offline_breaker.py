"""The auto-offline breaker: many stale heartbeats at once mean the fault is upstream."""

import pytest

from shared.sweeps.jobs import breaker_trips


@pytest.mark.parametrize(
    ("stale", "online", "tripped"),
    [
        (4, 4, False),  # under the minimum: a small fleet's real outage is offlined
        (5, 100, False),  # at the minimum but only 5 %
        (30, 100, False),  # exactly the fraction is not more than it
        (31, 100, True),  # more than the fraction, and at least the minimum
        (5, 5, True),  # every online mitra stale at once
        (5, 0, True),  # nothing counted online (the mirror lost its set): never mass-offline
    ],
)
def test_breaker_trips_only_above_the_minimum_and_the_fraction(stale: int, online: int, tripped: bool) -> None:
    assert breaker_trips(stale, online, max_fraction=0.3, minimum=5) is tripped


def test_a_minimum_of_one_lets_the_fraction_alone_decide() -> None:
    assert breaker_trips(1, 2, max_fraction=0.3, minimum=1) is True
    assert breaker_trips(1, 4, max_fraction=0.3, minimum=1) is False
