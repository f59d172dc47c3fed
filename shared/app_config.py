"""Runtime-tunable settings stored in Postgres `app_config` (edited by the control center).

Defaults mirror migrations 0002, 0006, 0008 and 0018 so a missing row never breaks a request.
Each key has a type (integer, boolean or a list of integers), bounds and a description, which
the control center lists (`list_all`). Reads go to Postgres
(one small indexed query); callers on a hot path cache what they need. A read either runs on
its own (`get(ctx, key)`) or inside the caller's transaction (`get_in(tx, key)`), never both.
"""

from __future__ import annotations

import json
from typing import Any

from shared import audit
from shared.context import AppContext
from shared.db import Tx
from shared.errors import NotFound, ValidationFailed

DEFAULTS: dict[str, bool | int | list[int]] = {
    "otp_ttl_seconds": 300,
    "otp_resend_cooldown_seconds": 60,
    "otp_max_requests_per_hour": 5,
    "otp_max_verify_attempts": 5,
    "otp_max_requests_per_ip_per_hour": 30,
    "anonymous_signins_per_ip_per_hour": 30,
    "identity_signins_per_ip_per_hour": 120,
    "cc_logins_per_ip_per_hour": 60,
    "cc_max_failed_logins": 5,
    "cc_lockout_minutes": 15,
    "mitra_max_concurrent_sessions": 1,
    "session_default_minutes": 30,
    "mitra_sees_customer_name": False,  # false: mitras see an alias of the customer (shared.anonymity)
    "chat_max_messages_per_minute": 60,  # per sender (shared.chat)
    "session_requests_per_customer_per_hour": 20,  # sessions created (shared.pairing)
    "session_cancel_cooldown_seconds": 15,  # no new request this long after a cancel
    "price_per_minute_idr": 1000,  # whole IDR (shared.payments, docs/payments.md)
    "session_allowed_minutes": [5, 10, 15, 20, 30, 45, 60, 90, 120],  # bookable durations (a list)
}


_GET = "SELECT value FROM app_config WHERE key = :k"


def get_all(ctx: AppContext) -> dict[str, Any]:
    """Every key with its current value (defaults filled in), read on its own."""
    rows = ctx.db.rows("SELECT key, value FROM app_config")
    return {**DEFAULTS, **{r["key"]: _typed(r["key"], r["value"]) for r in rows}}


def get(ctx: AppContext, key: str) -> Any:
    """One key's value (its default when the row is missing), read on its own."""
    return _value(key, ctx.db.one(_GET, k=key))


def get_in(tx: Tx, key: str) -> Any:
    """One key's value read inside the caller's transaction."""
    return _value(key, tx.one(_GET, k=key))


def _value(key: str, row: Any) -> Any:
    return _typed(key, row["value"]) if row else DEFAULTS.get(key)


def _typed(key: str, stored: Any) -> Any:
    """A stored value as its key's type: a boolean key stored as 0/1 (before it was one) reads as a boolean."""
    return bool(stored) if key in BOOLEAN_KEYS else stored


# Allowed range per integer key (boolean keys have none). Bounds keep a typo from locking every
# staff member out or disabling OTP limits.
BOUNDS: dict[str, tuple[int, int]] = {
    "otp_ttl_seconds": (30, 3600),
    "otp_resend_cooldown_seconds": (0, 3600),
    "otp_max_requests_per_hour": (1, 1000),
    "otp_max_verify_attempts": (1, 20),
    "otp_max_requests_per_ip_per_hour": (1, 100_000),
    "anonymous_signins_per_ip_per_hour": (1, 100_000),
    "identity_signins_per_ip_per_hour": (1, 100_000),
    "cc_logins_per_ip_per_hour": (1, 100_000),
    "cc_max_failed_logins": (1, 100),
    "cc_lockout_minutes": (1, 1440),
    "mitra_max_concurrent_sessions": (0, 100),
    "session_default_minutes": (1, 1440),
    "chat_max_messages_per_minute": (1, 10_000),
    "session_requests_per_customer_per_hour": (1, 10_000),
    "session_cancel_cooldown_seconds": (0, 3600),
    "price_per_minute_idr": (0, 10_000_000),
    "session_allowed_minutes": (1, 1440),  # each item of the list
}
# Keys whose value is a list of distinct integers, each within BOUNDS (at most LIST_MAX items).
LIST_KEYS = frozenset({"session_allowed_minutes"})
LIST_MAX = 50
# Keys whose value is a JSON boolean (no bounds). A PUT also takes 0/1, the integers these
# keys held before they were booleans, so older clients keep working.
BOOLEAN_KEYS = frozenset({"mitra_sees_customer_name"})


def require_key(key: str) -> str:
    """The key itself, or 404 CONFIG_KEY_NOT_FOUND."""
    if key not in DEFAULTS:
        raise NotFound(f"unknown app_config key {key!r}", code="CONFIG_KEY_NOT_FOUND")
    return key


def validate(key: str, value: Any) -> bool | int | list[int]:
    """The value as the boolean, integer (or list) the key accepts, or 400 VALIDATION_FAILED on `value`."""
    if require_key(key) in BOOLEAN_KEYS:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValidationFailed("value", "must be true or false")
    low, high = BOUNDS[key]
    if key in LIST_KEYS:
        if not isinstance(value, list) or not 1 <= len(value) <= LIST_MAX:
            raise ValidationFailed("value", f"must be a list of 1 to {LIST_MAX} integers")
        items = [_integer(v, low, high) for v in value]
        if len(set(items)) != len(items):
            raise ValidationFailed("value", "must not repeat an item")
        return sorted(items)
    return _integer(value, low, high)


def _integer(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValidationFailed("value", "must be an integer")
    if not low <= int(value) <= high:
        raise ValidationFailed("value", f"must be between {low} and {high}")
    return int(value)


def read(ctx: AppContext, key: str) -> dict[str, Any]:
    """{key, value, default, updated_at} of one key (404 for unknown keys)."""
    require_key(key)
    row = ctx.db.one("SELECT value, updated_at FROM app_config WHERE key = :k", k=key)
    return {
        "key": key,
        "value": _value(key, row),
        "default": DEFAULTS[key],
        "updated_at": row["updated_at"].isoformat() if row else None,
    }


def put(ctx: AppContext, key: str, value: Any, actor: str) -> dict[str, Any]:
    """Validate and upsert one key, with its audit row by `actor`; return it as `read` does."""
    clean = validate(key, value)
    with ctx.db.transaction() as tx:
        row = tx.one(
            "INSERT INTO app_config (key, value, updated_at) VALUES (:k, CAST(:v AS jsonb), :now)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at"
            " RETURNING value, updated_at",
            k=key,
            v=json.dumps(clean),
            now=ctx.now(),
        )
        assert row is not None
        audit.record(tx, actor, "app_config.put", "app_config", key, ctx.now(), {"value": row["value"]})
        tx.commit()
    return {
        "key": key,
        "value": _typed(key, row["value"]),
        "default": DEFAULTS[key],
        "updated_at": row["updated_at"].isoformat(),
    }


# What each key does, as the control center shows it next to the value (GET /internal/app-config).
DESCRIPTIONS: dict[str, str] = {
    "otp_ttl_seconds": "How long an SMS sign-in code stays valid (seconds).",
    "otp_resend_cooldown_seconds": "Wait before another code may be sent to the same phone (seconds).",
    "otp_max_requests_per_hour": "Codes one phone may request per hour.",
    "otp_max_verify_attempts": "Wrong guesses allowed per code before it is burnt.",
    "otp_max_requests_per_ip_per_hour": "Codes one IP address may request per hour.",
    "anonymous_signins_per_ip_per_hour": "Anonymous customer sign-ins per IP address per hour.",
    "identity_signins_per_ip_per_hour": "Google/Apple sign-ins per IP address per hour.",
    "cc_logins_per_ip_per_hour": "Control-center login attempts per IP address per hour.",
    "cc_max_failed_logins": "Failed control-center logins before the account is locked.",
    "cc_lockout_minutes": "How long a control-center lockout lasts (minutes).",
    "mitra_max_concurrent_sessions": "Open sessions a mitra may hold at once (a mitra's own setting overrides it).",
    "session_default_minutes": "Duration of a session requested without one (minutes).",
    "mitra_sees_customer_name": "Whether mitras see customers' display names (false: a stable alias).",
    "chat_max_messages_per_minute": "Messages one sender may send per minute.",
    "session_requests_per_customer_per_hour": "Chat sessions one customer may request per hour.",
    "session_cancel_cooldown_seconds": "Wait after a cancel before the customer may request again (seconds).",
    "price_per_minute_idr": "Price of one minute of chat, in whole rupiah.",
    "session_allowed_minutes": "The durations a customer may book or extend by (minutes).",
}


def type_of(key: str) -> str:
    """`boolean`, `integer_list` or `integer`: the JSON type a key's value has."""
    return "boolean" if key in BOOLEAN_KEYS else "integer_list" if key in LIST_KEYS else "integer"


def list_all(ctx: AppContext) -> dict[str, Any]:
    """Every key (in DEFAULTS order) with its type, bounds, description, value, default and updated_at."""
    rows = {r["key"]: r for r in ctx.db.rows("SELECT key, value, updated_at FROM app_config")}
    items = []
    for key, default in DEFAULTS.items():
        row = rows.get(key)
        low, high = BOUNDS.get(key, (None, None))
        items.append(
            {
                "key": key,
                "type": type_of(key),
                "value": _value(key, row),
                "default": default,
                "min": low,
                "max": high,
                **({"max_items": LIST_MAX} if key in LIST_KEYS else {}),
                "description": DESCRIPTIONS[key],
                "updated_at": row["updated_at"].isoformat() if row else None,
            }
        )
    return {"app_config": items}
