"""Mitra sign-in by phone OTP and the mitra's own profile.

Mitras are onboarded by the control center, so an unknown phone is 404 MITRA_NOT_FOUND (no
SMS is sent) and a deactivated mitra is 403 ACCOUNT_INACTIVE, at request and at verify
(`mitras.is_active` read from Postgres each time).
"""

from __future__ import annotations

from typing import Any

from shared import mitras
from shared.auth import otp, refresh
from shared.context import AppContext


def profile_of(row: dict[str, Any]) -> dict[str, Any]:
    """The mitra's profile: the `user` of its token responses and GET /api/mitra/auth/me."""
    return {**mitras.to_json(row), "user_type": "mitra"}


def sign_in(ctx: AppContext, request_id: str, code: str, user_agent: str | None) -> dict[str, Any]:
    """Verify a mitra OTP and open a session for the (active) mitra of that phone."""
    with ctx.db.transaction() as tx:
        verified = otp.check_code(ctx, tx, "mitra", request_id, code)
        row = mitras.require_active_by_phone(tx, verified.phone)
        issued = refresh.start_session(ctx, tx, "mitra", str(row["id"]), user_agent=user_agent)
        tx.commit()
    return issued.body(profile_of(row))


def me(ctx: AppContext, mitra_id: str) -> dict[str, Any]:
    """The mitra's profile (GET /api/mitra/auth/me)."""
    with ctx.db.transaction() as tx:
        return profile_of(mitras.require(tx, mitra_id))
