"""Sweep functions invoked by Cloud Scheduler: auto-offline, heartbeat mirror, reseed, session expiry.

Thin entry points only: each runs one named sweep through shared.sweeps.service.
"""

import functions_framework

from shared import context
from shared.http import ApiRequest, endpoint
from shared.sweeps import service

context.init()


@functions_framework.http
@endpoint
def sweep_auto_offline(req: ApiRequest) -> dict:
    return service.invoke(req, "auto-offline")


@functions_framework.http
@endpoint
def sweep_heartbeat_mirror(req: ApiRequest) -> dict:
    return service.invoke(req, "heartbeat-mirror")


@functions_framework.http
@endpoint
def sweep_availability_reseed(req: ApiRequest) -> dict:
    return service.invoke(req, "availability-reseed")


@functions_framework.http
@endpoint
def sweep_session_expiry(req: ApiRequest) -> dict:
    return service.invoke(req, "session-expiry")
