"""Field validation for JSON bodies, query strings and path parameters.

Each helper returns the clean value or raises ValidationFailed naming the field, so a
handler reads as a list of fields and a bad request is always a 400 VALIDATION_FAILED.

`json_body` is the edge filter every JSON body passes before a handler sees it: no string
(key or value, at any depth) holds NUL or text UTF-8 cannot encode (a lone surrogate from a
`\\udc00` escape), and every number is finite and, when integral, fits a Postgres bigint.
So nothing a client sends can reach Postgres as text it refuses or a number it overflows on.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from shared.errors import ValidationFailed

_MISSING = object()

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# C0 controls, DEL and C1 controls: never meaningful in a header value we keep.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_QUERY_INT = re.compile(r"[+-]?[0-9]{1,20}")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as Postgres text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return None


def json_body(body: Any, root: str = "") -> None:
    """Raise ValidationFailed naming the first unstorable string or out-of-range number in `body`."""
    stack: list[tuple[str, Any]] = [(root, body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ValidationFailed(path or "body", problem)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise ValidationFailed(path or "body", "is out of range")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationFailed(path or "body", "must be a finite number")
        elif isinstance(value, dict):
            for key, item in value.items():
                if text_problem(key):
                    raise ValidationFailed(path or "body", "has a key that is not valid text")
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def clean_header(value: str | None, max_len: int = 256) -> str | None:
    """A header value safe to store: control characters dropped, unencodable text replaced."""
    if value is None:
        return None
    value = _CONTROL.sub("", value).encode("utf-8", "replace").decode("utf-8").strip()[:max_len]
    return value or None


def query_integer(
    raw: str | None, name: str, *, minimum: int | None = None, maximum: int | None = None, default: int | None = None
) -> int | None:
    """An integer query or path parameter (decimal digits), range-checked like a body field.

    Absent or empty: `default`.
    """
    if raw is None or raw == "":
        return default
    if not _QUERY_INT.fullmatch(raw):
        raise ValidationFailed(name, "must be an integer")
    return integer({name: int(raw)}, name, minimum=minimum, maximum=maximum)


def _get(body: Mapping[str, Any], name: str, required: bool) -> Any:
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise ValidationFailed(name, "is required")
        return _MISSING
    return value


def string(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    min_len: int = 1,
    max_len: int = 256,
    strip: bool = True,
    default: str | None = None,
    multiline: bool = False,
) -> str | None:
    """A string field of bounded length, without control characters (bar newlines and tabs if multiline)."""
    value = _get(body, name, required)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        raise ValidationFailed(name, "must be a string")
    problem = text_problem(value)
    if problem:
        raise ValidationFailed(name, problem)
    if (_CONTROL_MULTILINE if multiline else _CONTROL).search(value):
        raise ValidationFailed(name, "must not contain control characters")
    if strip:
        value = value.strip()
    if len(value) < min_len:
        raise ValidationFailed(name, "is required" if not value else f"must be at least {min_len} characters")
    if len(value) > max_len:
        raise ValidationFailed(name, f"must be at most {max_len} characters")
    return value


def integer(
    body: Mapping[str, Any],
    name: str,
    *,
    required: bool = True,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
) -> int | None:
    """An integer field (JSON number without fraction; booleans rejected) within bounds."""
    value = _get(body, name, required)
    if value is _MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValidationFailed(name, "must be an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValidationFailed(name, "is out of range")
    if minimum is not None and value < minimum:
        raise ValidationFailed(name, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ValidationFailed(name, f"must be at most {maximum}")
    return value


def boolean(body: Mapping[str, Any], name: str, *, required: bool = True, default: bool | None = None) -> bool | None:
    value = _get(body, name, required)
    if value is _MISSING:
        return default
    if not isinstance(value, bool):
        raise ValidationFailed(name, "must be true or false")
    return value


def choice(
    body: Mapping[str, Any], name: str, options: tuple[str, ...], *, required: bool = True, default: str | None = None
) -> str | None:
    value = _get(body, name, required)
    if value is _MISSING:
        return default
    if value not in options:
        raise ValidationFailed(name, f"must be one of {', '.join(options)}")
    return str(value)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(value: str) -> str:
    """`value` as a UUID in canonical lowercase form; raises ValueError when it is none.

    The ids this service issues are already canonical: a match of the pattern is returned as it
    is (str(uuid.UUID(x)) gives x back), which spares uuid.UUID's parsing on every request's
    token (two per request, about a fiftieth of the heartbeat's CPU)."""
    if _CANONICAL_UUID.fullmatch(value):
        return value
    return str(uuid.UUID(value))


def uuid_value(value: Any, name: str) -> str:
    """A UUID (path parameter or field) in canonical lowercase form."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationFailed(name, "must be a UUID")
    try:
        return canonical_uuid(value)
    except ValueError:
        raise ValidationFailed(name, "must be a UUID") from None
