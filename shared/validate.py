"""Field validation for JSON bodies, query strings and path parameters.

Each helper returns the clean value or raises ValidationFailed naming the field, so a
handler reads as a list of fields and a bad request is always a 400 VALIDATION_FAILED.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from shared.errors import ValidationFailed

_MISSING = object()


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
) -> str | None:
    """A string field of bounded length."""
    value = _get(body, name, required)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        raise ValidationFailed(name, "must be a string")
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


def uuid_value(value: Any, name: str) -> str:
    """A UUID (path parameter or field) in canonical lowercase form."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, AttributeError, TypeError):
        raise ValidationFailed(name, "must be a UUID") from None


def query_integer(raw: str | None, name: str, *, minimum: int, maximum: int, default: int) -> int:
    """An integer query-string parameter within bounds (absent or empty: `default`)."""
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 20:
        raise ValidationFailed(name, "must be an integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ValidationFailed(name, f"must be between {minimum} and {maximum}")
    return value
