"""Opaque cursors: they round-trip, belong to one list, and anything else is a 400 naming `cursor`."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from shared import paging
from shared.errors import ValidationFailed

KEY = (paging.timestamp, lambda v: str(uuid.UUID(v)))


def test_a_cursor_round_trips_its_sort_key() -> None:
    at, row_id = datetime(2026, 11, 28, 10, 5, 1, 123456, tzinfo=UTC), str(uuid.uuid4())
    assert paging.decode("customers", paging.encode("customers", (at, row_id)), KEY) == (at, row_id)
    assert paging.decode("customers", None, KEY) is None and paging.decode("customers", "", KEY) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%",
        "not base64 at all!",
        paging.encode("mitras", (datetime.now(UTC), str(uuid.uuid4()))),  # another list's cursor
        paging.encode("customers", (datetime.now(UTC),)),  # wrong arity
        paging.encode("customers", ("yesterday", str(uuid.uuid4()))),
        paging.encode("customers", ("2026-11-28T10:00:00", str(uuid.uuid4()))),  # no timezone
        paging.encode("customers", (datetime.now(UTC), "not-a-uuid")),
        paging.encode("customers", ("0001-01-01T00:00:00+14:00", str(uuid.uuid4()))),  # before year 1 in UTC
        paging.encode("customers", ("9999-12-31T23:59:59-14:00", str(uuid.uuid4()))),  # after year 9999 in UTC
        base64.urlsafe_b64encode(json.dumps({"kind": "customers"}).encode()).decode(),
        "A" * 600,
    ],
    ids=[  # fixed names: pytest-xdist workers must collect the same ids (the values hold the time)
        "bad-chars",
        "not-base64",
        "another-lists-cursor",
        "wrong-arity",
        "not-a-time",
        "no-timezone",
        "not-a-uuid",
        "before-year-1-in-utc",
        "after-year-9999-in-utc",
        "not-a-list",
        "too-long",
    ],
)
def test_anything_but_a_cursor_of_this_list_is_a_400_naming_cursor(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        paging.decode("customers", cursor, KEY)
    assert raised.value.extra["field"] == "cursor"


def test_limit_and_search_are_bounded() -> None:
    assert paging.limit(None) == paging.DEFAULT_LIMIT and paging.limit("200") == 200
    for bad in ("0", "201", "-1", "ten", "1.5"):
        with pytest.raises(ValidationFailed):
            paging.limit(bad)
    assert paging.search_text("  ") is None and paging.search_text(" rina ") == "rina"
    with pytest.raises(ValidationFailed):
        paging.search_text("x" * 101)


def test_search_patterns_escape_like_wildcards_and_read_local_phone_numbers() -> None:
    assert paging.like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"
    assert paging.phone_pattern("0812-345") == "%62812345%"
    assert paging.phone_pattern("+62 812 345") == "%62812345%"
    assert paging.phone_pattern("rina 0812") is None and paging.phone_pattern("12") is None


def test_a_number_typed_from_its_start_is_a_phone_prefix_and_other_digits_a_substring() -> None:
    assert paging.phone_prefix("0812 345") == "+62812345" and paging.phone_prefix("+1 (415) 555") == "+1415555"
    assert paging.phone_prefix("(0812) 3") == "+628123"
    assert paging.phone_prefix("812 345") is None and paging.phone_prefix("rina 0812") is None
    start, middle, name = (paging.search_params(s) for s in ("0812-345", "3456 789", "Rina"))
    assert (start["phone_prefix"], start["phone"], start["q_phone"]) == ("+62812345%", None, None)
    assert (middle["phone_prefix"], middle["phone"], middle["digits"]) == (None, "%3456789%", "3456789")
    assert (name["q_phone"], name["phone"], name["phone_prefix"], name["needle"]) == ("%Rina%", None, None, "Rina")
    assert set(paging.search_params(None).values()) == {None}
