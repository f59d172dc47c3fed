"""The list filters' parsers: `from`/`to` time ranges and `true`/`false` flags (shared/paging.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared import paging
from shared.errors import ValidationFailed


def test_a_time_range_takes_zoned_iso_times_in_utc_and_allows_an_empty_range() -> None:
    window = paging.time_range("2026-12-01T07:00:00+07:00", "2026-12-02T00:00:00Z")
    assert window == paging.TimeRange(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    assert paging.time_range(None, "") == paging.TimeRange(None, None)
    same = paging.time_range("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert same.start == same.end  # [t, t) is empty, not an error


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "field"),
    [
        ("yesterday", None, "from"),
        (None, "2026-12-01T00:00:00", "to"),  # no timezone
        ("2026-12-01", None, "from"),  # a date is not a time
        ("0001-01-01T00:00:00+14:00", None, "from"),  # before year 1 in UTC
        (None, "9999-12-31T23:59:59-14:00", "to"),  # after year 9999 in UTC
        ("2026-12-02T00:00:00Z", "2026-12-01T00:00:00Z", "to"),  # ends before it starts
        ("2" * 65, None, "from"),
    ],
)
def test_a_bad_time_range_is_refused_naming_the_parameter(raw_from: str | None, raw_to: str | None, field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        paging.time_range(raw_from, raw_to)
    assert refused.value.extra["field"] == field


def test_a_time_range_names_its_own_parameters() -> None:
    with pytest.raises(ValidationFailed) as refused:
        paging.time_range("2026-12-02T00:00:00Z", "2026-12-01T00:00:00Z", ("created_from", "created_to"))
    assert refused.value.extra["field"] == "created_to"


def test_a_flag_is_exactly_true_or_false() -> None:
    assert paging.flag("true", "blocked") is True and paging.flag("false", "blocked") is False
    assert paging.flag(None, "blocked") is None and paging.flag("", "blocked") is None
    for bad in ("1", "yes", "True", "FALSE", " true"):
        with pytest.raises(ValidationFailed) as refused:
            paging.flag(bad, "blocked")
        assert refused.value.extra["field"] == "blocked"
