"""How many passes a sweep runs in one Scheduler invocation (Scheduler fires once a minute)."""

import pytest

from shared.sweeps.runner import Sweep, pass_fits


def _sweep(cadence: int) -> Sweep:
    return Sweep("s", cadence, lambda _ctx, _tx: {})


@pytest.mark.parametrize(
    ("cadence", "passes"),
    [(1, 60), (10, 6), (15, 4), (25, 2), (45, 1), (59, 1), (60, 1), (300, 1)],
)
def test_a_sub_minute_sweep_runs_sixty_over_its_cadence_passes_per_invocation(cadence: int, passes: int) -> None:
    assert _sweep(cadence).passes_per_invocation == passes


def test_the_first_pass_always_fits_a_budget_that_is_not_negative() -> None:
    assert pass_fits(0, 10, longest_pass=0.0, budget_seconds=0.0)


def test_a_pass_starts_only_if_it_would_end_inside_the_budget_at_the_longest_pass_so_far() -> None:
    # 10 s cadence, 55 s budget: pass 5 is due at 50 s.
    assert pass_fits(5, 10, longest_pass=5.0, budget_seconds=55.0)
    assert not pass_fits(5, 10, longest_pass=5.5, budget_seconds=55.0)
    assert not pass_fits(6, 10, longest_pass=0.0, budget_seconds=55.0)


def test_passes_that_fit_are_spaced_by_the_cadence() -> None:
    fitting = [i for i in range(_sweep(10).passes_per_invocation) if pass_fits(i, 10, 2.0, 45.0)]
    assert fitting == [0, 1, 2, 3, 4]
