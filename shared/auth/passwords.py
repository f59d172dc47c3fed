"""Password hashing (bcrypt at the configured cost, 12 by default) and the control-center password policy.

bcrypt reads at most 72 bytes; a longer password is rejected with a clear 400 rather than
silently truncated (docs/auth.md).
"""

from __future__ import annotations

import bcrypt

from shared.errors import ValidationFailed

MAX_BYTES = 72
MIN_LENGTH = 8


def check_policy(password: str, field: str = "password") -> None:
    """Min 8 characters with a digit, an upper- and a lower-case letter; at most 72 bytes."""
    if len(password.encode()) > MAX_BYTES:
        raise ValidationFailed(field, f"must be at most {MAX_BYTES} bytes")
    if (
        len(password) < MIN_LENGTH
        or not any(c.isdigit() for c in password)
        or not any(c.isupper() for c in password)
        or not any(c.islower() for c in password)
    ):
        raise ValidationFailed(
            field, f"must be at least {MIN_LENGTH} characters with a digit, an upper- and a lower-case letter"
        )


def hash_password(password: str, cost: int) -> str:
    """bcrypt hash at work factor `cost` (Settings.bcrypt_cost; the caller checked the policy)."""
    if len(password.encode()) > MAX_BYTES:
        raise ValidationFailed("password", f"must be at most {MAX_BYTES} bytes")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    """Constant-time bcrypt check; False for over-long input instead of truncating."""
    if len(password.encode()) > MAX_BYTES:
        return False
    return bcrypt.checkpw(password.encode(), password_hash.encode())
