"""Control-center (staff) accounts."""

from __future__ import annotations

from shared.auth import passwords
from shared.context import AppContext


def ensure_admin(ctx: AppContext, email: str, password: str) -> bool:
    """Create the initial admin if no account has that email; True when created (idempotent)."""
    passwords.check_policy(password, "ADMIN_PASSWORD")
    with ctx.db.transaction() as tx:
        created = tx.execute(
            "INSERT INTO control_center_users (email, password_hash, role) VALUES (:e, :h, 'admin')"
            " ON CONFLICT ((lower(email))) DO NOTHING",
            e=email.strip(),
            h=passwords.hash_password(password),
        )
        tx.commit()
    return created == 1
