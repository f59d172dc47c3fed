"""Access tokens for tests: a real auth session row plus a signed JWT (no OTP round trip)."""

from __future__ import annotations

import uuid

from shared.auth.principal import Principal
from shared.auth.tokens import create_session, encode_access
from shared.context import AppContext


def mitra_token(ctx: AppContext, mitra_id: str) -> tuple[str, str]:
    """(access token, session id) of a new session of this mitra."""
    return _token(ctx, "mitra", mitra_id)


def cc_user(ctx: AppContext, role: str = "admin") -> tuple[str, str]:
    """(user id, access token) of a new, real control-center user with `role` (admin routes re-check the row)."""
    with ctx.db.transaction() as tx:
        user_id = str(
            tx.scalar(
                "INSERT INTO control_center_users (email, password_hash, role) VALUES (:e, 'unused', :r) RETURNING id",
                e=f"staff-{uuid.uuid4().hex[:10]}@bestie.test",
                r=role,
            )
        )
        tx.commit()
    return user_id, _token(ctx, "cc", user_id, role)[0]


def cc_token(ctx: AppContext, role: str = "admin") -> str:
    """An access token of a new, real control-center user with `role`."""
    return cc_user(ctx, role)[1]


def _token(ctx: AppContext, user_type: str, user_id: str, role: str | None = None) -> tuple[str, str]:
    with ctx.db.transaction() as tx:
        sid = create_session(tx, ctx.settings, user_type, user_id, ctx.now())
        tx.commit()
    return encode_access(ctx.settings, Principal(user_type, user_id, sid, role), ctx.now()), sid


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
