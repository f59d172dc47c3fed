"""The account states that refuse a caller, one vocabulary for every user type (docs/auth.md).

A state that signing in again cannot fix is a 403 with its own code, wherever it is met: at
sign-in, at refresh, and on any route of a session the state ended:

- `ACCOUNT_BLOCKED`: a customer blocked by staff;
- `ACCOUNT_INACTIVE`: a mitra deactivated by staff.

Staff accounts keep their own rules (a deactivated staff member's session is 401
SESSION_REVOKED, their refresh 401 ACCOUNT_INACTIVE): the control center is not an app that
must explain the state to its user.

A session ended for any other reason (logout, reuse, a password change, an account a staff member
re-enabled since) stays 401 `SESSION_REVOKED`: signing in again is the way back. The state is
read now, not from the session's revocation reason, so a re-enabled account is never told it is
still blocked. Read only after a session was found revoked, so the hot path pays nothing.
"""

from __future__ import annotations

from shared.context import AppContext
from shared.db import DatabaseUnavailable
from shared.errors import Forbidden


def refusal(ctx: AppContext, user_type: str, user_id: str) -> Forbidden | None:
    """The 403 of the account's state when it refuses the account now, else None.

    Postgres unavailable: None, so the caller answers its plain 401 (the session is revoked
    either way; only the explanation is lost).
    """
    try:
        return _refusal(ctx, user_type, user_id)
    except DatabaseUnavailable:
        return None


def _refusal(ctx: AppContext, user_type: str, user_id: str) -> Forbidden | None:
    if user_type == "customer":
        blocked = ctx.db.scalar("SELECT blocked_at IS NOT NULL FROM customers WHERE id = CAST(:id AS uuid)", id=user_id)
        return Forbidden("this account is blocked", code="ACCOUNT_BLOCKED") if blocked else None
    if user_type == "mitra":
        inactive = ctx.db.scalar("SELECT NOT is_active FROM mitras WHERE id = CAST(:id AS uuid)", id=user_id)
        return Forbidden("this mitra account is deactivated", code="ACCOUNT_INACTIVE") if inactive else None
    return None
