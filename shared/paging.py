"""Opaque cursors and page sizes for every keyset-paginated list.

A list orders its rows by a unique key (for example `(created_at, id)` newest first) and
hands out the key of its last row as `next_cursor`: base64url of a small JSON array, tagged
with the list's name so a cursor of one list is refused by another. Clients treat it as
opaque; a cursor that was not made by `encode` for that list is 400 VALIDATION_FAILED
naming `cursor`. Every value a cursor carries is converted here to exactly what the query
binds (a timestamp to UTC), so a value the driver could not convert is refused before any
statement runs: `0001-01-01T00:00:00+14:00` parses, but lies before year 1 in UTC, and a row
id beyond bigint parses as a Python int, but no statement could bind it.
Keyset pages stay stable while rows are added (no skipped or repeated rows, unlike OFFSET)
and cost one index range scan however deep the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from shared import validate
from shared.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 512


def encode(kind: str, key: Sequence[Any]) -> str:
    """The cursor of a row's sort key (datetimes and UUIDs are written as ISO / text)."""
    values = [v.isoformat() if isinstance(v, datetime) else str(v) if v is not None else None for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str | None, parsers: Sequence[Callable[[str], Any]]) -> tuple[Any, ...] | None:
    """The sort key of a cursor of list `kind`, each value through its parser; None for no cursor."""
    if cursor is None or cursor == "":
        return None
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(parsers) + 1 or raw[0] != kind:
            raise ValueError("not this list's cursor")
        return tuple(parse(str(value)) for parse, value in zip(parsers, raw[1:], strict=True))
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor", "is not a cursor returned by this list") from None


def timestamp(text: str) -> datetime:
    """Parser of an ISO timestamp value (timezone required), in UTC; OverflowError outside year 1..9999."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive timestamp")
    return value.astimezone(UTC)


BIGINT_MAX = 2**63 - 1


def row_id(text: str) -> int:
    """Parser of a row id value (a bigint key, 0..2^63-1); ValueError otherwise, before any statement binds it."""
    value = int(text)
    if not 0 <= value <= BIGINT_MAX:
        raise ValueError("not a row id")
    return value


def after(kind: str, cursor: str | None) -> dict[str, Any]:
    """`after_at` / `after_id` bind parameters of a (time, id) newest-first list's cursor (None: first page)."""
    key = decode(kind, cursor, (timestamp, lambda v: str(uuid.UUID(v))))
    return {"after_at": key[0] if key else None, "after_id": key[1] if key else None}


def search_params(search: str | None) -> dict[str, str | None]:
    """The bind parameters of a search (all None without one; docs/control-center.md, "Paging and search").

    `q`: ILIKE over names and emails. `q_phone`: LIKE of the text itself over E.164 phones,
    only when the search is not a phone number (a number is matched by its digits instead).
    `phone`: LIKE of the digits anywhere in a phone (a number typed from its middle or end);
    `phone_prefix`: LIKE of the number's start, for a number typed from its start (`0…`, `+…`),
    served by a B-tree. `needle`, `digits` and `prefix` are the same as plain strings, for the
    newest-first scan that matches with strpos and starts_with instead of the indexes.
    """
    if not search:
        return dict.fromkeys(("q", "q_phone", "phone", "phone_prefix", "needle", "digits", "prefix"))
    substring, start = phone_pattern(search), phone_prefix(search)
    return {
        "q": like_pattern(search),
        "q_phone": like_pattern(search) if substring is None else None,
        "phone": substring if start is None else None,
        "phone_prefix": f"{start}%" if start else None,
        "needle": search,
        "digits": substring.strip("%") if substring and start is None else None,
        "prefix": start,
    }


def limit(raw: str | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """The `limit` query parameter: 1..maximum, `default` when absent."""
    value = validate.query_integer(raw, "limit", minimum=1, maximum=maximum, default=default)
    return default if value is None else value


class Page(NamedTuple):
    """Rows of one page and the cursor of the next (None on the last page)."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def page(kind: str, rows: list[dict[str, Any]], size: int, key: Callable[[dict[str, Any]], Sequence[Any]]) -> Page:
    """Cut `rows` (fetched with LIMIT size + 1) to a page; the next cursor when there were more."""
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, encode(kind, key(rows[-1])) if more and rows else None)


def like_pattern(search: str) -> str:
    """`%search%` for ILIKE with the LIKE wildcards of the input escaped (backslash is the escape)."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


SEARCH_MAX = 100


def search_text(raw: str | None) -> str | None:
    """The `search` query parameter trimmed (None when absent or blank); 400 when too long."""
    text = (raw or "").strip()
    if not text:
        return None
    if len(text) > SEARCH_MAX:
        raise ValidationFailed("search", f"must be at most {SEARCH_MAX} characters")
    return text


def phone_pattern(search: str) -> str | None:
    """A LIKE pattern over E.164 phones for a search holding 3+ digits (0812… is found as +62812…)."""
    digits = "".join(c for c in search if c.isdigit())
    if len(digits) < 3 or any(c.isalpha() for c in search):
        return None
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    return f"%{digits}%"


def phone_prefix(search: str) -> str | None:
    """The E.164 start (`+62812…`) of a phone-number search typed from the number's start, else None.

    A number is typed from its start when its first digit-or-plus is `+` or a local `0`
    (`0812 3456`, `+62 812`, `(0812) 345`); only the phones beginning with it match. Digits
    typed otherwise (`3456 7890`, the end of a number) match anywhere (`phone_pattern`).
    """
    pattern = phone_pattern(search)
    first = next((c for c in search if c.isdigit() or c == "+"), "")
    if pattern is None or first not in ("+", "0"):
        return None
    return "+" + pattern.strip("%")


class TimeRange(NamedTuple):
    """A half-open time range `[start, end)`; either end None means unbounded."""

    start: datetime | None
    end: datetime | None


def time_range(raw_from: str | None, raw_to: str | None, names: tuple[str, str] = ("from", "to")) -> TimeRange:
    """The `from` / `to` query parameters: ISO 8601 times with a timezone, `from` <= `to`; 400 naming the bad one."""
    start, end = (_query_time(raw, name) for raw, name in zip((raw_from, raw_to), names, strict=True))
    if start is not None and end is not None and start > end:
        raise ValidationFailed(names[1], f"must not be before {names[0]}")
    return TimeRange(start, end)


def _query_time(raw: str | None, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        if len(raw) > 64:
            raise ValueError("too long")
        return timestamp(raw)
    except (ValueError, OverflowError):
        raise ValidationFailed(name, "must be an ISO 8601 time with a timezone, e.g. 2026-12-01T00:00:00Z") from None


def flag(raw: str | None, name: str) -> bool | None:
    """A `true` / `false` query parameter (None when absent or empty); 400 naming it otherwise."""
    if raw is None or raw == "":
        return None
    if raw not in ("true", "false"):
        raise ValidationFailed(name, "must be true or false")
    return raw == "true"
