"""Customer accounts: anonymous sign-in, phone / Google / Apple sign-in and linking, profile.

Linking rule (docs/auth.md): with a customer bearer, the verified identity is attached to that
customer (an anonymous one becomes a full account). An identity already owned by another
customer is 409 IDENTITY_TAKEN; a bearer customer that already holds a different identity of
the same kind is 409 IDENTITY_ALREADY_LINKED; either way nothing changes (the transaction
rolls back, the OTP included).
Without a bearer the identity signs in its customer, or creates one. A successful link ends the
bearer's session (`identity_linked`) in the transaction that opens the new one: the response's
token pair replaces the anonymous one, which stops refreshing and authenticating at once.

A customer blocked by the control center (`blocked_at`) cannot sign in: phone, Google and
Apple sign-in and refresh answer 403 ACCOUNT_BLOCKED (the block revoked every session); a
deactivated mitra's refresh is 403 ACCOUNT_INACTIVE (shared.auth.account_state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pg8000.exceptions import DatabaseError

from shared import app_config, mitras, ratelimit
from shared.auth import account_state, mitra_auth, otp, refresh, revocation
from shared.auth.identity import Identity
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Prepared, Row, Tx, is_unique_violation
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized

COLUMNS = (
    "id, display_name, phone_e164, email, google_sub, apple_sub, is_anonymous, created_at, updated_at, blocked_at,"
    " email_private_relay, email_forwarding_disabled_at, deleted_at"
)
# Identity kind -> its unique column (constants, never input).
_IDENTITY_COLUMN = {"phone": "phone_e164", "google": "google_sub", "apple": "apple_sub"}
HOUR = 3600
LINKED_REASON = "identity_linked"


def to_json(row: Row) -> dict[str, Any]:
    """The public shape of a customer (the `user` of token responses and GET /me)."""
    return {
        "id": str(row["id"]),
        "user_type": "customer",
        "display_name": row["display_name"],
        "phone": row["phone_e164"],
        "email": row["email"],
        "email_private_relay": row["email_private_relay"],
        "email_forwarding": row["email"] is not None and row["email_forwarding_disabled_at"] is None,
        "is_anonymous": row["is_anonymous"],
        "linked": {
            "phone": row["phone_e164"] is not None,
            "google": row["google_sub"] is not None,
            "apple": row["apple_sub"] is not None,
        },
        "created_at": row["created_at"].isoformat(),
    }


def sign_in_anonymous(ctx: AppContext, client_ip: str, user_agent: str | None) -> dict[str, Any]:
    """Create an anonymous customer and its session (rate limited per IP)."""
    limit = int(app_config.get(ctx, "anonymous_signins_per_ip_per_hour"))
    ratelimit.hit(ctx, ratelimit.Limit("anon_ip", limit, HOUR), ratelimit.client_network(client_ip))
    with ctx.db.transaction() as tx:
        row = tx.one(f"INSERT INTO customers (is_anonymous) VALUES (true) RETURNING {COLUMNS}")  # noqa: S608
        assert row is not None
        issued = refresh.start_session(ctx, tx, "customer", str(row["id"]), user_agent=user_agent)
        tx.commit()
    return issued.body(to_json(row))


def sign_in_with_phone(
    ctx: AppContext, request_id: str, code: str, bearer: Principal | None, user_agent: str | None
) -> dict[str, Any]:
    """Verify a customer OTP, then link or sign in the phone's customer."""
    with ctx.db.transaction() as tx:
        verified = otp.check_code(ctx, tx, "customer", request_id, code)
        row = _link_or_find(tx, "phone", verified.phone, bearer, email=None)
        _refuse_blocked(row)
        _end_linking_session(ctx, tx, bearer)
        issued = refresh.start_session(ctx, tx, "customer", str(row["id"]), user_agent=user_agent)
        tx.commit()
    return issued.body(to_json(row))


def sign_in_with_identity(
    ctx: AppContext,
    identity: Identity,
    bearer: Principal | None,
    user_agent: str | None,
    *,
    keep: Callable[[Tx, str], None] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Link or sign in the customer of a verified Google / Apple identity.

    `keep(tx, customer_id)` stores what the sign-in brought (Apple's refresh token) in the same
    transaction; `name` (given by Apple once) becomes the display name if there is none.
    """
    with ctx.db.transaction() as tx:
        row = _link_or_find(tx, identity.provider, identity.subject, bearer, email=identity.email)
        _refuse_blocked(row)
        _end_linking_session(ctx, tx, bearer)
        if keep is not None:
            keep(tx, str(row["id"]))
        if name or identity.email:
            row = _set_given(tx, str(row["id"]), name, identity)
        issued = refresh.start_session(ctx, tx, "customer", str(row["id"]), user_agent=user_agent)
        tx.commit()
    return issued.body(to_json(row))


def _set_given(tx: Tx, customer_id: str, name: str | None, identity: Identity) -> Row:
    """The name given at sign-in fills an empty display name; the email's relay flag follows it."""
    row = tx.one(
        "UPDATE customers SET display_name = COALESCE(display_name, :name),"  # noqa: S608 (constant columns)
        " email_private_relay = CASE WHEN email = :email THEN :relay ELSE email_private_relay END"
        f" WHERE id = CAST(:id AS uuid) RETURNING {COLUMNS}",
        name=name,
        email=identity.email,
        relay=identity.private_email,
        id=customer_id,
    )
    assert row is not None
    return row


def _end_linking_session(ctx: AppContext, tx: Tx, bearer: Principal | None) -> None:
    """A link replaces the bearer's session by the pair it returns: the old tokens stop with the commit."""
    if bearer is not None:
        revocation.take_access_away(ctx, tx, reason=LINKED_REASON, session_ids=[bearer.session_id])


def _refuse_blocked(row: Row) -> None:
    if row["blocked_at"] is not None:
        raise Forbidden("this account is blocked", code="ACCOUNT_BLOCKED")


def rotate_refresh(ctx: AppContext, refresh_token: str) -> refresh.Issued:
    """Rotate an app refresh token; 403 with the account's state (not 401) when it is blocked or deactivated."""
    try:
        return refresh.rotate(ctx, refresh_token, ("customer", "mitra"), account_of=_app_account)
    except Unauthorized as exc:
        owner = _owner(ctx, refresh_token) if exc.code == "SESSION_REVOKED" else None
        refused = account_state.refusal(ctx, owner["user_type"], str(owner["user_id"])) if owner else None
        if refused is not None:
            raise refused from None
        raise


def _owner(ctx: AppContext, refresh_token: str) -> Row | None:
    return ctx.db.one(
        "SELECT s.user_type, s.user_id FROM refresh_tokens rt JOIN auth_sessions s ON s.id = rt.session_id"
        " WHERE rt.token_hash = :h",
        h=refresh.token_hash(refresh_token),
    )


def _taken() -> Conflict:
    return Conflict("this identity belongs to another account", code="IDENTITY_TAKEN")


def _already_linked(kind: str) -> Conflict:
    return Conflict(f"this account already has another {kind} identity", code="IDENTITY_ALREADY_LINKED")


def _link_or_find(tx: Tx, kind: str, value: str, bearer: Principal | None, email: str | None) -> Row:
    column = _IDENTITY_COLUMN[kind]
    owner = tx.one(f"SELECT {COLUMNS} FROM customers WHERE {column} = :v FOR UPDATE", v=value)  # noqa: S608
    if bearer is None:
        if owner is not None:
            return owner
        try:
            row = tx.one(
                f"INSERT INTO customers ({column}, email, is_anonymous) VALUES (:v, :email, false)"  # noqa: S608
                f" RETURNING {COLUMNS}",
                v=value,
                email=email,
            )
        except DatabaseError as exc:
            if is_unique_violation(exc):  # a concurrent first sign-in of the same identity won
                raise Conflict("signing in concurrently, try again", code="SIGN_IN_RACE") from None
            raise
        assert row is not None
        return row
    me = tx.one(f"SELECT {COLUMNS} FROM customers WHERE id = CAST(:id AS uuid) FOR UPDATE", id=bearer.user_id)  # noqa: S608
    if me is None or me["deleted_at"] is not None:  # deleted after the bearer was checked: no revival
        raise Unauthorized("the customer of this token no longer exists", code="TOKEN_INVALID")
    if owner is not None and owner["id"] != me["id"]:
        raise _taken()
    if me[column] not in (None, value):
        raise _already_linked(kind)
    try:
        row = tx.one(
            f"UPDATE customers SET {column} = :v, is_anonymous = false, email = COALESCE(email, :email),"  # noqa: S608
            f" updated_at = now() WHERE id = :id RETURNING {COLUMNS}",
            v=value,
            email=email,
            id=me["id"],
        )
    except DatabaseError as exc:
        if is_unique_violation(exc):  # linked to someone else concurrently
            raise _taken() from None
        raise
    assert row is not None
    return row


# Prepared once per connection: it runs on every app refresh.
_REFRESHED_CUSTOMER = Prepared(f"SELECT {COLUMNS} FROM customers WHERE id = CAST(:id AS uuid)")  # noqa: S608 (constant SQL)


def _app_account(tx: Tx, user_id: str) -> Row:
    """The refreshed account's profile, read inside the rotation's transaction (one statement for a
    customer, two for a mitra): the `user` of the response, the same shape sign-in returns."""
    row = tx.one(_REFRESHED_CUSTOMER, id=user_id)
    if row is not None:
        return to_json(row)
    return mitra_auth.profile_of(mitras.require(tx, user_id))


def app_user(issued: refresh.Issued) -> dict[str, Any]:
    """The `user` of a refreshed app token pair (read by `rotate_refresh` in its transaction)."""
    assert issued.account is not None
    return issued.account


def change_phone(ctx: AppContext, customer_id: str, request_id: str, code: str) -> dict[str, Any]:
    """Move the customer to the number an OTP was sent to (PUT /api/client/auth/phone); the profile.

    The code proves the new number. 409 IDENTITY_TAKEN when another account has it; then, as for
    every refused verify, the transaction rolls back and the code stays unused. The session stays:
    the account is the same. An anonymous customer adding a number becomes a full account.
    """
    with ctx.db.transaction() as tx:
        verified = otp.check_code(ctx, tx, "customer", request_id, code)
        owner = tx.scalar("SELECT id FROM customers WHERE phone_e164 = :p FOR UPDATE", p=verified.phone)
        if owner is not None and str(owner) != customer_id:
            raise _taken()
        try:
            row = tx.one(
                "UPDATE customers SET phone_e164 = :p, is_anonymous = false, updated_at = :now"  # noqa: S608
                f" WHERE id = CAST(:id AS uuid) AND deleted_at IS NULL RETURNING {COLUMNS}",
                p=verified.phone,
                now=ctx.now(),
                id=customer_id,
            )
        except DatabaseError as exc:
            if is_unique_violation(exc):  # taken by someone else concurrently
                raise _taken() from None
            raise
        if row is None:
            raise Unauthorized("the customer of this token no longer exists", code="TOKEN_INVALID")
        tx.commit()
    return to_json(row)


def get(ctx: AppContext, customer_id: str) -> dict[str, Any]:
    """The customer's profile (GET /me)."""
    row = ctx.db.one(f"SELECT {COLUMNS} FROM customers WHERE id = CAST(:id AS uuid)", id=customer_id)  # noqa: S608
    if row is None:
        raise NotFound("customer not found", code="CUSTOMER_NOT_FOUND")
    return to_json(row)


def update_profile(ctx: AppContext, customer_id: str, display_name: str) -> dict[str, Any]:
    """Set the display name; return the profile."""
    with ctx.db.transaction() as tx:
        row = tx.one(
            f"UPDATE customers SET display_name = :n, updated_at = now() WHERE id = CAST(:id AS uuid)"  # noqa: S608
            f" RETURNING {COLUMNS}",
            n=display_name,
            id=customer_id,
        )
        tx.commit()
    if row is None:
        raise NotFound("customer not found", code="CUSTOMER_NOT_FOUND")
    return to_json(row)
