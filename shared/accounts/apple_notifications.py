"""Apple's server-to-server notifications for Sign in with Apple (POST /api/apple/notifications).

Apple posts {"payload": <JWS>} to the URL registered for the app; the JWS is signed with the keys
of APPLE_JWKS_URL, `iss` = APPLE_ISSUER, `aud` = our client id, and its `events` claim is a JSON
string {type, sub, event_time, [email, is_private_email]},
https://developer.apple.com/documentation/sign_in_with_apple/processing-changes-for-sign-in-with-apple-accounts

What each event does (docs/auth.md, "Apple's notifications"):
- `consent-revoked` (the user stopped using Apple ID with the app): every session of the customer
  is revoked and Apple is unlinked (the kept token dropped: Apple already ended it). A customer
  with no phone or Google left could never sign in again: the account is deleted instead.
- `account-delete` (the Apple ID was deleted): the account is deleted (shared.auth.deletion).
- `email-disabled` / `email-enabled`: the customer's relay email stops / starts forwarding.
Every event is idempotent: it sets a state, so a redelivery changes nothing more; a withdrawal
whose `event_time` precedes the customer's last Apple code exchange is ignored. An unknown
`sub` or event type is acknowledged (200) and ignored; a payload that does not verify is 401.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.accounts import deletion
from shared.auth import apple_tokens, identity, revocation
from shared.context import AppContext
from shared.errors import Unauthorized

log = logging.getLogger(__name__)

CONSENT_REVOKED_REASON = "apple_consent_revoked"
ACTOR = "apple:notification"
EVENT_TIME_TOLERANCE = timedelta(minutes=1)


def _invalid() -> Unauthorized:
    return Unauthorized("the notification is not signed by Apple for this app", code="NOTIFICATION_INVALID")


def verify(ctx: AppContext, payload: str) -> dict[str, Any]:
    """The event of a signed notification; 401 NOTIFICATION_INVALID unless Apple signed it for us."""
    try:
        claims = identity.decode_apple_jwt(ctx, payload, required=("iat", "iss", "aud", "events"))
    except Unauthorized:
        raise _invalid() from None
    events = claims.get("events")
    try:
        event = json.loads(events) if isinstance(events, str) else events
    except ValueError:
        raise _invalid() from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(event.get("sub"), str):
        raise _invalid()
    return event


def handle(ctx: AppContext, payload: str) -> dict[str, Any]:
    """Verify the notification and act on its event; what was done."""
    event = verify(ctx, payload)
    kind, sub = event["type"], event["sub"]
    customer = ctx.db.one(
        "SELECT id, phone_e164, google_sub FROM customers WHERE apple_sub = :s AND deleted_at IS NULL", s=sub
    )
    if customer is None:
        return {"type": kind, "applied": False}  # unknown, already unlinked or deleted: nothing to do
    customer_id = str(customer["id"])
    if kind in ("consent-revoked", "account-delete") and _older_than_last_sign_in(ctx, customer_id, event):
        log.info("apple notification older than the last Apple sign-in ignored", extra={"type": kind})
        return {"type": kind, "applied": False}
    if kind == "account-delete" or (
        kind == "consent-revoked" and customer["phone_e164"] is None and customer["google_sub"] is None
    ):
        _delete(ctx, customer_id)
    elif kind == "consent-revoked":
        _unlink(ctx, customer_id, sub)
    elif kind in ("email-disabled", "email-enabled"):
        _email_state(ctx, customer_id, event, enabled=kind == "email-enabled")
    else:
        log.info("apple notification of an unknown type ignored", extra={"type": kind})
        return {"type": kind, "applied": False}
    log.info("apple notification applied", extra={"type": kind})
    return {"type": kind, "applied": True}


def _older_than_last_sign_in(ctx: AppContext, customer_id: str, event: dict[str, Any]) -> bool:
    """Whether the user authorized the app again (a code exchange) after the event happened.

    A delayed, reordered or replayed withdrawal must not undo a later sign-in. Apple's clock and
    ours may differ, and `event_time` has millisecond precision: a minute of tolerance.
    """
    last = apple_tokens.last_grant_at(ctx, customer_id)
    return last is not None and _event_time(event) < last - EVENT_TIME_TOLERANCE


def _delete(ctx: AppContext, customer_id: str) -> None:
    with contextlib.suppress(Unauthorized):  # deleted meanwhile (another delivery, the app): same end state
        deletion.delete_customer(ctx, customer_id, actor=ACTOR, apple_gone=True)


def _unlink(ctx: AppContext, customer_id: str, sub: str) -> None:
    with ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE customers SET apple_sub = NULL, updated_at = now() WHERE id = CAST(:id AS uuid) AND apple_sub = :s",
            id=customer_id,
            s=sub,
        )
        apple_tokens.forget(tx, customer_id)
        revocation.take_access_away(ctx, tx, reason=CONSENT_REVOKED_REASON, user_type="customer", user_id=customer_id)
        tx.commit()


def _email_state(ctx: AppContext, customer_id: str, event: dict[str, Any], *, enabled: bool) -> None:
    email = event.get("email") if isinstance(event.get("email"), str) else None
    relay = event.get("is_private_email") in (True, "true")
    at = _event_time(event)
    with ctx.db.transaction() as tx:
        tx.execute(
            "UPDATE customers SET email = COALESCE(:email, email),"
            " email_private_relay = CASE WHEN :email IS NULL THEN email_private_relay ELSE :relay END,"
            " email_forwarding_disabled_at = CASE WHEN :enabled THEN NULL"
            "   ELSE COALESCE(email_forwarding_disabled_at, :at) END,"
            " updated_at = now() WHERE id = CAST(:id AS uuid)",
            email=email,
            relay=relay,
            enabled=enabled,
            at=at,
            id=customer_id,
        )
        tx.commit()


def _event_time(event: dict[str, Any]) -> datetime:
    millis = event.get("event_time")
    if isinstance(millis, int) and millis > 0:
        return datetime.fromtimestamp(millis / 1000, UTC)
    return datetime.now(UTC)
