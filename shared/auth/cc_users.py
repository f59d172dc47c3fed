"""Control-center (staff) accounts: login with lockout, refresh cookie, users and passwords.

bcrypt, BCRYPT_COST. Every login costs one bcrypt check whatever happens (an unknown email or a
locked one is checked against a dummy hash) and every failure answers the same 401, so
neither time nor answer reveals which emails exist or are locked. Failures are counted in
shared storage (shared.ratelimit) per normalized email, known or not: per email+IP (locks
that IP out of that email) and per email (locks it for everyone, only after failures from
many IPs); see docs/auth.md, "Lockout". Roles are re-read from Postgres
on every refresh and on every admin-only route, because a role can change while a token lives.
"""

from __future__ import annotations

import functools
import secrets
from datetime import datetime, timedelta
from typing import Any

from pg8000.exceptions import DatabaseError

from shared import app_config, audit, ratelimit
from shared.auth import passwords, refresh, revocation
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Prepared, Row, Tx, is_unique_violation
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed

ROLES = ("admin", "operator")
HOUR = 3600
# An email is locked for everyone after this many times cc_max_failed_logins failures in
# the window, coming from IPs not already locked out of it (docs/auth.md, "Lockout").
EMAIL_LOCK_FACTOR = 10
COLUMNS = "id, email, password_hash, role, is_active, failed_login_count, lockout_until, created_at"


def to_json(row: Row) -> dict[str, Any]:
    """The public shape of a control-center user (never the hash)."""
    return {
        "id": str(row["id"]),
        "user_type": "cc",
        "email": row["email"],
        "role": row["role"],
        "is_active": row["is_active"],
        "created_at": row["created_at"].isoformat(),
    }


def normalize_email(raw: str) -> str:
    """A trimmed email with one @ and no spaces, or 400 naming `email`."""
    email = raw.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 254:
        raise ValidationFailed("email", "is not an email address")
    return email


def ensure_admin(ctx: AppContext, email: str, password: str) -> bool:
    """Create the initial admin if no account has that email; True when created (idempotent)."""
    passwords.check_policy(password, "ADMIN_PASSWORD")
    with ctx.db.transaction() as tx:
        created = tx.execute(
            "INSERT INTO control_center_users (email, password_hash, role) VALUES (:e, :h, 'admin')"
            " ON CONFLICT ((lower(email))) DO NOTHING",
            e=email.strip(),
            h=passwords.hash_password(password, ctx.settings.bcrypt_cost),
        )
        tx.commit()
    return created == 1


@functools.cache
def _dummy_hash(cost: int) -> str:
    """A hash of a random password: unknown emails are checked against it (same cost as real ones)."""
    return passwords.hash_password(secrets.token_urlsafe(24), cost)


def _invalid_credentials() -> Unauthorized:
    return Unauthorized("wrong email or password", code="INVALID_CREDENTIALS")


def _failure_rules(ctx: AppContext) -> tuple[ratelimit.Limit, ratelimit.Limit]:
    """(per email+IP, per email) failure windows of cc_lockout_minutes (docs/auth.md, "Lockout")."""
    cfg = app_config.get_all(ctx)
    max_failures, window = int(cfg["cc_max_failed_logins"]), int(cfg["cc_lockout_minutes"]) * 60
    return (
        ratelimit.Limit("cc_fail", max_failures, window, durable=True),
        ratelimit.Limit("cc_fail_email", max_failures * EMAIL_LOCK_FACTOR, window, durable=True),
    )


def login(
    ctx: AppContext, email: str, password: str, user_agent: str | None, client_ip: str
) -> tuple[refresh.Issued, dict[str, Any]]:
    """Check the password and open a session with the user's role.

    Every attempt costs the caller's IP a hit (429 RATE_LIMITED past the hourly limit, before
    any bcrypt). Failures are counted per normalized email, known or not, for this IP and
    for the email as a whole; a locked pair or email, an unknown email and a wrong password
    all take one bcrypt check and give the same 401 INVALID_CREDENTIALS.
    """
    if len(password.encode()) > passwords.MAX_BYTES:
        raise ValidationFailed("password", f"must be at most {passwords.MAX_BYTES} bytes")
    per_ip = int(app_config.get(ctx, "cc_logins_per_ip_per_hour"))
    network = ratelimit.client_network(client_ip)
    ratelimit.hit(ctx, ratelimit.Limit("cc_login_ip", per_ip, HOUR), network)
    key = email.lower()
    pair_rule, email_rule = _failure_rules(ctx)
    pair = f"{key}|{network}"
    pair_locked = ratelimit.exceeded(ctx, pair_rule, pair)
    locked = pair_locked or ratelimit.exceeded(ctx, email_rule, key)
    row = ctx.db.one(f"SELECT {COLUMNS} FROM control_center_users WHERE lower(email) = :e", e=key)  # noqa: S608
    usable = row is not None and not locked
    hashed = row["password_hash"] if usable and row is not None else _dummy_hash(ctx.settings.bcrypt_cost)
    if not passwords.verify_password(password, hashed) or not usable or row is None:
        ratelimit.record(ctx, pair_rule, pair)
        if not pair_locked:  # an IP already locked out of this email cannot push the email-wide count
            ratelimit.record(ctx, email_rule, key)
        raise _invalid_credentials()
    ratelimit.reset(ctx, pair_rule, pair)
    with ctx.db.transaction() as tx:
        user = tx.one(f"SELECT {COLUMNS} FROM control_center_users WHERE id = :id", id=row["id"])  # noqa: S608
        if user is None:
            raise _invalid_credentials()
        if not user["is_active"]:
            raise Forbidden("this account is deactivated", code="ACCOUNT_INACTIVE")
        issued = refresh.start_session(ctx, tx, "cc", str(user["id"]), role=user["role"], user_agent=user_agent)
        tx.commit()
    return issued, to_json(user)


# What a refresh reads of the account (what `to_json` answers, never the hash), prepared once per
# connection: it runs on every staff refresh.
_REFRESHED_ACCOUNT = Prepared(
    "SELECT id, email, role, is_active, created_at FROM control_center_users WHERE id = CAST(:id AS uuid)"
)


def _account_of(tx: Tx, user_id: str) -> Row:
    """The user as it is now (its role); 401 when the account is gone or deactivated (refresh)."""
    row = tx.one(_REFRESHED_ACCOUNT, id=user_id)
    if row is None or not row["is_active"]:
        raise Unauthorized("this account can no longer sign in", code="ACCOUNT_INACTIVE")
    return row


def refresh_session(ctx: AppContext, refresh_token: str) -> tuple[refresh.Issued, dict[str, Any]]:
    """Rotate a control-center refresh token (the account and its role re-read from Postgres)."""
    issued = refresh.rotate(ctx, refresh_token, ("cc",), account_of=_account_of)
    assert issued.account is not None
    return issued, to_json(issued.account)


def is_active_admin(ctx: AppContext, user_id: str) -> bool:
    """True while the user exists, is active and is still an admin (checked per admin request)."""
    role = ctx.db.scalar("SELECT role FROM control_center_users WHERE id = CAST(:id AS uuid) AND is_active", id=user_id)
    return bool(role == "admin")


def get(ctx: AppContext, user_id: str) -> dict[str, Any]:
    """One user (GET /internal/auth/me)."""
    row = ctx.db.one(f"SELECT {COLUMNS} FROM control_center_users WHERE id = CAST(:id AS uuid)", id=user_id)  # noqa: S608
    if row is None:
        raise NotFound("user not found", code="USER_NOT_FOUND")
    return to_json(row)


def list_users(ctx: AppContext) -> list[dict[str, Any]]:
    """Every control-center user, oldest first."""
    rows = ctx.db.rows(f"SELECT {COLUMNS} FROM control_center_users ORDER BY created_at, id")  # noqa: S608
    return [to_json(r) for r in rows]


def create_user(ctx: AppContext, email: str, password: str, role: str, actor: str | None = None) -> dict[str, Any]:
    """Create a staff account; 409 EMAIL_TAKEN for a used email in any case.

    `actor` is the admin creating it (`cc:<id>`), audited in the same transaction; None only
    for accounts made outside the control center (the first admin, tests).
    """
    passwords.check_policy(password)
    hashed = passwords.hash_password(password, ctx.settings.bcrypt_cost)
    try:
        with ctx.db.transaction() as tx:
            row = tx.one(
                "INSERT INTO control_center_users (email, password_hash, role) VALUES (:e, :h, :r)"  # noqa: S608
                f" RETURNING {COLUMNS}",
                e=email,
                h=hashed,
                r=role,
            )
            assert row is not None
            if actor is not None:
                audit.record(tx, actor, "cc_user.create", "cc_user", str(row["id"]), ctx.now(), {"role": role})
            tx.commit()
    except DatabaseError as exc:
        if is_unique_violation(exc):
            raise Conflict("a user with this email exists", code="EMAIL_TAKEN") from None
        raise
    assert row is not None
    return to_json(row)


def change_own_password(ctx: AppContext, principal: Principal, current: str, new: str) -> int:
    """Change the caller's password (current one required); revoke their other sessions.

    Wrong current passwords are counted per account like login failures; 429 once they fill the window.
    """
    if len(current.encode()) > passwords.MAX_BYTES:
        raise ValidationFailed("current_password", f"must be at most {passwords.MAX_BYTES} bytes")
    passwords.check_policy(new, "new_password")
    row = ctx.db.one(
        "SELECT password_hash FROM control_center_users WHERE id = CAST(:id AS uuid)", id=principal.user_id
    )
    if row is None:
        raise NotFound("user not found", code="USER_NOT_FOUND")
    rule = _own_password_rule(ctx)
    # Checked before bcrypt: spent guesses cost nothing more.
    ratelimit.require_room(ctx, rule, principal.user_id, "too many wrong current passwords, try again later")
    if not passwords.verify_password(current, row["password_hash"]):
        ratelimit.record(ctx, rule, principal.user_id)
        raise Forbidden("the current password is wrong", code="CURRENT_PASSWORD_INCORRECT")
    ratelimit.reset(ctx, rule, principal.user_id)
    return _set_password(ctx, principal.user_id, new, keep_session=principal.session_id, reason="password_changed")


def _own_password_rule(ctx: AppContext) -> ratelimit.Limit:
    """Wrong current passwords per user: the login failure window (cc_max_failed_logins per cc_lockout_minutes).

    Keyed by the account, not the IP: whoever holds the access token guesses for that account.
    """
    cfg = app_config.get_all(ctx)
    minutes = int(cfg["cc_lockout_minutes"])
    return ratelimit.Limit("cc_pw_fail", int(cfg["cc_max_failed_logins"]), minutes * 60, durable=True)


def reset_password(ctx: AppContext, caller: Principal, user_id: str, new: str) -> int:
    """Admin reset of another user: set the password, revoke every session, lift an email-wide lock.

    Never the caller's own account: changing one's own password needs the current one
    (`change_own_password`), so a stolen access token cannot become a permanent takeover.
    """
    if user_id == caller.user_id:
        raise Forbidden(
            "use /internal/control-center-users/me/password to change your own password",
            code="USE_OWN_PASSWORD_ROUTE",
        )
    passwords.check_policy(new, "new_password")
    email = ctx.db.scalar("SELECT email FROM control_center_users WHERE id = CAST(:id AS uuid)", id=user_id)
    revoked = _set_password(ctx, user_id, new, keep_session=None, reason="password_reset", by=f"cc:{caller.user_id}")
    lift_email_lock(ctx, str(email))  # the reset also lifts an email-wide lock
    return revoked


def email_locked_until(ctx: AppContext, email: str) -> datetime | None:
    """When the email-wide login lock of `email` ends, or None when it is not locked."""
    remaining_ms = ratelimit.full_for_ms(ctx, _failure_rules(ctx)[1], email.lower())
    return None if remaining_ms is None else ctx.now() + timedelta(milliseconds=remaining_ms)


def lift_email_lock(ctx: AppContext, email: str) -> None:
    """Forget the failures counted against `email` as a whole (an admin's unlock or reset)."""
    ratelimit.reset(ctx, _failure_rules(ctx)[1], email.lower())


def _set_password(
    ctx: AppContext, user_id: str, new: str, *, keep_session: str | None, reason: str, by: str | None = None
) -> int:
    """Set the password and revoke the user's sessions (but `keep_session`); an admin reset (`by`) is audited."""
    hashed = passwords.hash_password(new, ctx.settings.bcrypt_cost)
    with ctx.db.transaction() as tx:
        updated = tx.execute(
            "UPDATE control_center_users SET password_hash = :h, failed_login_count = 0, lockout_until = NULL,"
            " updated_at = :now WHERE id = CAST(:id AS uuid)",
            h=hashed,
            now=ctx.now(),
            id=user_id,
        )
        if not updated:
            raise NotFound("user not found", code="USER_NOT_FOUND")
        revoked = revocation.take_access_away(
            ctx, tx, reason=reason, user_type="cc", user_id=user_id, except_session=keep_session
        )
        if by is not None:
            audit.record(tx, by, "cc_user.password_reset", "cc_user", user_id, ctx.now())
        tx.commit()
    return len(revoked)
