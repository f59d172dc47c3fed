"""Staff accounts in the control center: role and active flag, unlock, the users list.

Rules (docs/control-center.md): admins only; never on yourself (the admin password reset too)
(403 SELF_CHANGE_FORBIDDEN: an admin who could demote or deactivate themself could leave
nobody in charge); never leaving no active
admin (409 LAST_ADMIN). The check locks every active admin row (`FOR UPDATE`, in id order)
before counting, so two admins demoting each other at once are serialized and the second
finds itself the last. Deactivating revokes every session of the user at once (Postgres, then
Valkey); a role change needs no revocation because admin-only routes re-read the role.

The SQL of `control_center_users` for these routes lives here rather than in
shared.auth.cc_users, which owns sign-in and passwords.
"""

from __future__ import annotations

from typing import Any

from shared import audit, validate
from shared.auth import cc_users, revocation
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Row
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed


def _actor(principal: Principal) -> str:
    return f"cc:{principal.user_id}"


def to_json(row: Row, ctx: AppContext) -> dict[str, Any]:
    """A staff account with its lockout: `locked_until` is set while its email-wide lock runs."""
    locked_until = cc_users.email_locked_until(ctx, row["email"])
    return {**cc_users.to_json(row), "locked_until": locked_until.isoformat() if locked_until else None}


def list_users(ctx: AppContext) -> list[dict[str, Any]]:
    """Every control-center user, oldest first, with who is locked until when."""
    rows = ctx.db.rows(f"SELECT {cc_users.COLUMNS} FROM control_center_users ORDER BY created_at, id")  # noqa: S608
    return [to_json(r, ctx) for r in rows]


def parse_patch(body: dict[str, Any]) -> dict[str, Any]:
    """{role?, is_active?}: at least one."""
    changes: dict[str, Any] = {}
    if "role" in body:
        changes["role"] = validate.choice(body, "role", cc_users.ROLES)
    if "is_active" in body:
        changes["is_active"] = validate.boolean(body, "is_active")
    if not changes:
        raise ValidationFailed("body", "give role and/or is_active")
    return changes


def _not_yourself(principal: Principal, user_id: str) -> None:
    if principal.user_id == user_id:
        raise Forbidden("you cannot change your own role or active flag", code="SELF_CHANGE_FORBIDDEN")


def update_user(ctx: AppContext, principal: Principal, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Set role and/or is_active of another user; 409 LAST_ADMIN; deactivation revokes their sessions."""
    _not_yourself(principal, user_id)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        admins = tx.rows(
            "SELECT id FROM control_center_users WHERE role = 'admin' AND is_active ORDER BY id FOR UPDATE"
        )
        row = tx.one(
            f"SELECT {cc_users.COLUMNS} FROM control_center_users WHERE id = CAST(:id AS uuid) FOR UPDATE",  # noqa: S608
            id=user_id,
        )
        if row is None:
            raise NotFound("user not found", code="USER_NOT_FOUND")
        after = {"role": row["role"], "is_active": row["is_active"], **changes}
        was_admin = row["role"] == "admin" and row["is_active"]
        if was_admin and not (after["role"] == "admin" and after["is_active"]) and len(admins) <= 1:
            raise Conflict("the last active admin cannot be demoted or deactivated", code="LAST_ADMIN")
        changed = {k: {"from": row[k], "to": v} for k, v in changes.items() if row[k] != v}
        revoked: list[str] = []
        if changed:
            row = tx.one(
                "UPDATE control_center_users SET role = :role, is_active = :active, updated_at = :now"  # noqa: S608
                f" WHERE id = CAST(:id AS uuid) RETURNING {cc_users.COLUMNS}",
                role=after["role"],
                active=after["is_active"],
                now=now,
                id=user_id,
            )
            assert row is not None
            if not after["is_active"]:
                revoked = revocation.take_access_away(ctx, tx, reason="deactivated", user_type="cc", user_id=user_id)
            detail = {**changed, "revoked_sessions": len(revoked)}
            audit.record(tx, _actor(principal), "cc_user.update", "cc_user", user_id, now, detail)
        tx.commit()
    return {**to_json(row, ctx), "revoked_sessions": len(revoked)}


def unlock(ctx: AppContext, principal: Principal, user_id: str) -> dict[str, Any]:
    """Lift the email-wide login lock (audited when there was one to lift)."""
    row = ctx.db.one(f"SELECT {cc_users.COLUMNS} FROM control_center_users WHERE id = CAST(:id AS uuid)", id=user_id)  # noqa: S608
    if row is None:
        raise NotFound("user not found", code="USER_NOT_FOUND")
    locked_until = cc_users.email_locked_until(ctx, row["email"])
    cc_users.lift_email_lock(ctx, row["email"])
    if locked_until is not None:
        detail = {"locked_until": locked_until.isoformat()}
        audit.record_now(ctx, _actor(principal), "cc_user.unlock", "cc_user", user_id, detail)
    return to_json(row, ctx)
