"""Pairing and chat-session functions: availability beacon, request, accept, lifecycle.

Thin entry points only: each parses, calls one service in shared/, and returns.
"""

from shared import context

context.init()
