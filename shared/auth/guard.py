"""The `authenticate` guard every authenticated entry point runs (via shared.http).

Checks the bearer token (signature, algorithm, exp/iat/iss), the user type the route
accepts, then revocation (shared.auth.revocation.is_revoked: Valkey while the mirror is
seeded and trusted by this instance, else `auth_sessions` in Postgres); a revoked session of
a blocked or deactivated account is 403 with the account's state (shared.auth.account_state).
Admin-only routes (`cc_admin`) also re-check the role in Postgres.
"""

from __future__ import annotations

from typing import Any

from shared.auth import account_state, revocation, tokens
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.errors import Forbidden, Unauthorized

# Manifest auth kind -> user types it admits.
ADMITS: dict[str, tuple[str, ...]] = {
    "customer": ("customer",),
    "mitra": ("mitra",),
    "cc": ("cc",),
    "cc_admin": ("cc",),
    "any": ("customer", "mitra"),
}


def bearer_token(req: Any) -> str:
    """The token of an `Authorization: Bearer ...` header, or 401."""
    header = req.header("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token", code="UNAUTHORIZED")
    return token.strip()


def verify(ctx: AppContext, token: str, kind: str, *, check_revocation: bool = True) -> Principal:
    """Verify a token for a route of `kind`; raise 401/403."""
    principal = tokens.decode_access(ctx.settings, token, ctx.now())
    if principal.user_type not in ADMITS[kind]:
        raise Forbidden(f"this route is not for {principal.user_type} accounts", code="WRONG_USER_TYPE")
    if check_revocation and revocation.is_revoked(ctx, principal.session_id):
        # A blocked or deactivated account is told so (403), as at sign-in and refresh.
        raise account_state.refusal(ctx, principal.user_type, principal.user_id) or Unauthorized(
            "session revoked", code="SESSION_REVOKED"
        )
    if kind == "cc_admin" and (principal.role != "admin" or not _still_admin(ctx, principal.user_id)):
        raise Forbidden("admin role required", code="ADMIN_REQUIRED")
    return principal


def _still_admin(ctx: AppContext, user_id: str) -> bool:
    # The role claim is only a hint: a role can be taken away while the token lives.
    from shared.auth import cc_users

    return cc_users.is_active_admin(ctx, user_id)


def optional(ctx: AppContext, req: Any, kind: str) -> Principal | None:
    """The caller on a route where a bearer is optional (linking); a bad token is still 401."""
    if not (req.header("Authorization") or "").strip():
        return None
    return verify(ctx, bearer_token(req), kind)


def authenticate(ctx: AppContext, req: Any, kind: str) -> Principal:
    """shared.http's hook: the route's manifest may defer revocation to the handler."""
    deferred = req.function.revocation_check == "handler"
    return verify(ctx, bearer_token(req), kind, check_revocation=not deferred)
