"""Runtime-tunable settings stored in Postgres `app_config` (edited by the control center).

Defaults mirror migration 0002 so a missing row never breaks a request. Reads go to Postgres
(one small indexed query); callers on a hot path cache what they need.
"""

from __future__ import annotations

from typing import Any

from shared.context import AppContext
from shared.db import Tx

DEFAULTS: dict[str, int] = {
    "otp_ttl_seconds": 300,
    "otp_resend_cooldown_seconds": 60,
    "otp_max_requests_per_hour": 5,
    "otp_max_verify_attempts": 5,
    "otp_max_requests_per_ip_per_hour": 30,
    "anonymous_signins_per_ip_per_hour": 30,
    "cc_max_failed_logins": 5,
    "cc_lockout_minutes": 15,
    "mitra_max_concurrent_sessions": 1,
    "session_default_minutes": 30,
}


def get_all(ctx: AppContext, tx: Tx | None = None) -> dict[str, Any]:
    """Every key with its current value (defaults filled in)."""
    sql = "SELECT key, value FROM app_config"
    rows = tx.rows(sql) if tx else ctx.db.rows(sql)
    return {**DEFAULTS, **{r["key"]: r["value"] for r in rows}}


def get(ctx: AppContext, key: str, tx: Tx | None = None) -> Any:
    """One key's value (its default when the row is missing)."""
    sql = "SELECT value FROM app_config WHERE key = :k"
    row = tx.one(sql, k=key) if tx else ctx.db.one(sql, k=key)
    return row["value"] if row else DEFAULTS.get(key)
