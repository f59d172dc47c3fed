"""Liveness of the two stores behind every function (GET /healthz)."""

from __future__ import annotations

import logging
import time
from typing import Any

from shared.context import AppContext

log = logging.getLogger(__name__)


def _probe(fn: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # any failure means "down"; the reason is reported, not raised
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check(ctx: AppContext) -> tuple[bool, dict[str, Any]]:
    """Ping Postgres and Valkey; return (all ok, report)."""
    report = {"postgres": _probe(lambda: ctx.db.scalar("SELECT 1")), "valkey": _probe(lambda: ctx.valkey.ping())}
    healthy = all(part["ok"] for part in report.values())
    if not healthy:
        log.warning("health check failed", extra={"down": [k for k, v in report.items() if not v["ok"]]})
    return healthy, {"status": "ok" if healthy else "degraded", **report}
