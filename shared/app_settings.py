"""What an app reads at start (GET /api/{client,mitra}/config): its timers, limits and prices.

One read of `app_config` (the values staff edit, defaults filled in) plus the deployment's
settings; nothing is cached, since an app asks once per launch. docs/api.md ("App config")
says what each field is for.
"""

from __future__ import annotations

from typing import Any

from shared import app_config
from shared.context import AppContext
from shared.sessions.states import MAX_DURATION_MINUTES

# A ping every third of the stale threshold: two pings may be lost before a mitra counts as gone.
PINGS_PER_STALE_WINDOW = 3


def for_app(ctx: AppContext, user_type: str) -> dict[str, Any]:
    """The config of the customer app, or the mitra app (which also learns its default capacity)."""
    values = app_config.get_all(ctx)
    s = ctx.settings
    out: dict[str, Any] = {
        "heartbeat_interval_seconds": s.mitra_heartbeat_stale_seconds // PINGS_PER_STALE_WINDOW,
        "heartbeat_stale_seconds": s.mitra_heartbeat_stale_seconds,
        "search_timeout_seconds": s.pairing_timeout_seconds,
        "payment_timeout_seconds": s.payment_timeout_seconds,
        "session_allowed_minutes": values["session_allowed_minutes"],
        "session_default_minutes": values["session_default_minutes"],
        "session_max_total_minutes": MAX_DURATION_MINUTES,  # with every extension
        "price_per_minute_idr": values["price_per_minute_idr"],
        "chat_max_messages_per_minute": values["chat_max_messages_per_minute"],
    }
    if user_type == "mitra":
        out["mitra_max_concurrent_sessions"] = values["mitra_max_concurrent_sessions"]
    return out
