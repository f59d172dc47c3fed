"""The HTTP face of a sweep: one Cloud Scheduler invocation of one named sweep."""

from __future__ import annotations

from typing import Any

from shared.sweeps import jobs, runner

# Seconds kept free before the function timeout for the final bookkeeping and the response.
TIMEOUT_MARGIN_SECONDS = 15


def invoke(req: Any, name: str) -> dict[str, Any]:
    """Run sweep `name` for this request (Scheduler headers, function timeout as the budget)."""
    budget = max(1, req.function.timeout - TIMEOUT_MARGIN_SECONDS)
    return runner.invoke(
        req.ctx,
        jobs.sweep(name, req.ctx.settings),
        schedule_time=jobs.schedule_time(req.header("X-CloudScheduler-ScheduleTime")),
        budget_seconds=budget,
    )
