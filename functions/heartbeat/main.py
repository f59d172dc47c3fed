"""Mitra status functions: online, offline, heartbeat, status, devices.

Thin entry points only: each parses, calls one service in shared/, and returns.
"""

from shared import context

context.init()
