"""Sweep functions invoked by Cloud Scheduler: auto-offline, heartbeat mirror, reseed, session expiry, retention.

Each entry point is one Scheduler job running one named sweep (shared.sweeps.jobs) through
shared.sweeps.runner, with the function's timeout, less a margin, as its budget. The caller
is checked by shared.sweeps.caller (Scheduler's OIDC token), not by the bearer-JWT guard.
"""

import functions_framework

from shared import context
from shared.http import ApiRequest, endpoint
from shared.sweeps import caller, jobs, runner

context.init()

# Seconds kept free before the function timeout for the final bookkeeping and the response.
TIMEOUT_MARGIN_SECONDS = 15


def _run(req: ApiRequest, name: str) -> dict:
    return runner.invoke(
        req.ctx,
        jobs.sweep(name, req.ctx.settings),
        schedule_time=jobs.schedule_time(req.header("X-CloudScheduler-ScheduleTime")),
        budget_seconds=max(1, req.function.timeout - TIMEOUT_MARGIN_SECONDS),
    )


@functions_framework.http
@endpoint("POST /sweeps/auto-offline", auth="scheduler", authenticate=caller.authenticate)
def sweep_auto_offline(req: ApiRequest) -> dict:
    return _run(req, "auto-offline")


@functions_framework.http
@endpoint("POST /sweeps/heartbeat-mirror", auth="scheduler", authenticate=caller.authenticate)
def sweep_heartbeat_mirror(req: ApiRequest) -> dict:
    return _run(req, "heartbeat-mirror")


@functions_framework.http
@endpoint("POST /sweeps/availability-reseed", auth="scheduler", authenticate=caller.authenticate)
def sweep_availability_reseed(req: ApiRequest) -> dict:
    return _run(req, "availability-reseed")


@functions_framework.http
@endpoint("POST /sweeps/session-expiry", auth="scheduler", authenticate=caller.authenticate)
def sweep_session_expiry(req: ApiRequest) -> dict:
    return _run(req, "session-expiry")


@functions_framework.http
@endpoint("POST /sweeps/retention", auth="scheduler", authenticate=caller.authenticate)
def sweep_retention(req: ApiRequest) -> dict:
    return _run(req, "retention")
