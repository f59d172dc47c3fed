"""Authentication functions: anonymous, OTP, Google/Apple sign-in, refresh, logout, control-center accounts.

Thin entry points only: each parses, calls one service in shared/, and returns.
"""

from shared import context

context.init()
