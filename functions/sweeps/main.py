"""Sweep functions invoked by Cloud Scheduler: auto-offline, heartbeat mirror, reseed, session expiry.

Thin entry points only: each parses, calls one service in shared/, and returns.
"""

from shared import context

context.init()
