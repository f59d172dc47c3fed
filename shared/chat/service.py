"""Chat messages (docs/chat.md): send (idempotent), receive (long poll), read markers.

Send: one transaction that locks the session row, re-checks the sender is a party and the
session is active, and inserts; after the commit, a wake-up through Valkey and an FCM push to
the other party. Receive: `read` is one read of Postgres; the long poll around it (`wait`, the wake-up through
Valkey, the fallback to plain polling) is shared.chat.longpoll.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from shared import anonymity, app_config, feed, notify, ratelimit
from shared.auth.principal import Principal
from shared.chat import store
from shared.context import AppContext
from shared.db import Row, Tx
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.sessions import effects, settle, states
from shared.sessions import store as sessions

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 2000
MAX_WAIT_SECONDS = 25
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
FINAL_STATUSES = ("ended", "expired", "cancelled")


def _not_found() -> NotFound:
    return NotFound("chat session not found", code="SESSION_NOT_FOUND")


def clean_body(value: Any) -> str:
    """The message text: trimmed, 1..2000 characters, something visible, no hidden-text tricks.

    CRLF line breaks are normalized to LF first (the only control character a keyboard
    commonly adds); anything refused is refused (400 naming `body`) rather than silently
    stripped: control characters but newline and tab (C0, DEL, C1), the bidi embedding,
    override and isolate controls (they make "exe.txt" display as "txt.exe"), and tag
    characters (they carry text no one sees). A body of only spacing, format characters,
    fillers and combining marks (U+200B, U+FEFF, U+3164 …) displays as an empty bubble and
    is refused like an empty one. See docs/chat.md, "Message text".
    """
    if not isinstance(value, str):
        raise ValidationFailed("body", "must be a string" if value is not None else "is required")
    body = value.replace("\r\n", "\n").strip()
    if not body:
        raise ValidationFailed("body", "is required")
    if len(body) > MAX_BODY_CHARS:
        raise ValidationFailed("body", f"must be at most {MAX_BODY_CHARS} characters")
    if _CONTROLS.search(body):
        raise ValidationFailed("body", "must not contain control characters other than newline and tab")
    if _BIDI_CONTROLS.search(body):
        raise ValidationFailed("body", "must not contain bidi embedding, override or isolate controls")
    if _TAGS.search(body):
        raise ValidationFailed("body", "must not contain tag characters")
    if not any(_visible(ch) for ch in body):
        raise ValidationFailed("body", "must contain something visible")
    return body


# Unicode's `Cc` category is exactly U+0000..U+001F and U+007F..U+009F; newline and tab stay.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# U+202A..U+202E (LRE, RLE, PDF, LRO, RLO) and U+2066..U+2069 (LRI, RLI, FSI, PDI). The marks
# U+200E/U+200F stay allowed: right-to-left text needs them and they reorder nothing by force.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_TAGS = re.compile("[\U000e0000-\U000e007f]")
# Letters and symbols that render as blank space: Hangul fillers, the Braille blank, Khmer
# inherent vowels (https://www.unicode.org/reports/tr44/ lists none of them as whitespace).
_BLANK_GRAPHICS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")
# Categories that draw nothing on their own: separators, format, combining marks, unassigned.
_NOT_DRAWN = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Cn", "Mn", "Me"})


def _visible(ch: str) -> bool:
    return ch not in _BLANK_GRAPHICS and unicodedata.category(ch) not in _NOT_DRAWN


def _party(principal: Principal, session: Row | None) -> Row:
    """The session if the caller is its customer or its current mitra; 404 otherwise."""
    if session is None:
        raise _not_found()
    column = "customer_id" if principal.user_type == "customer" else "mitra_id"
    if session[column] is None or str(session[column]) != principal.user_id:
        raise _not_found()  # other people's sessions are indistinguishable from unknown ones
    return session


def _is_open_for_chat(session: Row, ctx: AppContext) -> bool:
    # An active session past expires_at is over even before the sweep (or a read) ends it.
    return bool(session["status"] == "active" and session["expires_at"] and session["expires_at"] > ctx.now())


def _peer(principal: Principal) -> str:
    return "mitra" if principal.user_type == "customer" else "customer"


# ---- send ------------------------------------------------------------------------------------


def send(
    ctx: AppContext, principal: Principal, session_id: str, client_message_id: str, body: str
) -> tuple[dict[str, Any], bool]:
    """Append a message from the caller; (message, created). A retry returns the first message.

    `body` is already cleaned (`clean_body`); a retry whose text differs is 409 CLIENT_MESSAGE_ID_REUSED.
    """
    sender_type, sender_id = principal.user_type, principal.user_id
    with ctx.db.transaction() as tx:
        _party(principal, sessions.get(tx, session_id))
        existing = store.find_by_client_id(tx, session_id, sender_type, sender_id, client_message_id)
        limit = int(app_config.get_in(tx, "chat_max_messages_per_minute"))
        sender_name = _sender_name(tx, principal)  # read before the lock: it keeps the lock short
    if existing is not None:
        return _retried(existing, body), False  # a retried send; not counted again
    ratelimit.hit(ctx, ratelimit.Limit("chat-send", limit, 60), f"{sender_type}:{sender_id}")
    now = ctx.now()
    with ctx.db.transaction() as tx:
        session = _party(principal, sessions.lock_for_messages(tx, session_id))
        # Under the lock: a concurrent retry with the same id committed first, or it did not.
        existing = store.find_by_client_id(tx, session_id, sender_type, sender_id, client_message_id)
        if existing is not None:
            return _retried(existing, body), False
        if not _is_open_for_chat(session, ctx):
            status = session["status"]
            raise Conflict(
                "messages can only be sent while the session is active",
                code="SESSION_NOT_ACTIVE",
                current_status=status,
            )
        row = sessions.append_message(tx, session_id, sender_type, sender_id, client_message_id, body, now)
        peer = _peer(principal)
        feed.add(tx, peer, session[f"{peer}_id"], feed.MESSAGE, now, session_id, message_id=int(row["id"]))
        tx.commit()
    effects.wake_readers(ctx, session_id)
    push = {
        "type": "chat_message",
        "session_id": session_id,
        "status": str(session["status"]),
        "message_id": str(row["id"]),
        "sender_type": sender_type,
        "sender_name": sender_name,
        "preview": row["body"],  # cut, or left out, by the push policy (shared/push.py)
    }
    notify.send(ctx, peer, [str(session[f"{peer}_id"])], push)
    return sessions.message_json(row), True


def _retried(existing: Row, body: str) -> dict[str, Any]:
    """The first message of a retried send; 409 when the retry carries another text (it would be lost)."""
    if existing["body"] != body:
        raise Conflict(
            "this client_message_id was already used for another message",
            code="CLIENT_MESSAGE_ID_REUSED",
            message_id=existing["id"],
        )
    return sessions.message_json(existing)


def _sender_name(tx: Tx, principal: Principal) -> str:
    """The sender as the recipient may see it: to a mitra a customer is an alias unless names are allowed."""
    name = store.display_name(tx, principal.user_type, principal.user_id)
    if principal.user_type == "customer":
        return anonymity.customer_for_mitra(principal.user_id, name, anonymity.mitra_sees_name_in(tx))["display_name"]
    return name or ""


# ---- receive ---------------------------------------------------------------------------------


class Poll(NamedTuple):
    """One read of the long poll: the answer, and when the session next moves by itself."""

    view: dict[str, Any]
    deadline: datetime | None


def read(ctx: AppContext, principal: Principal, session_id: str, after: int, limit: int) -> dict[str, Any]:
    """One read of the messages after `after` (blocking; the long poll around it is shared.chat.longpoll)."""
    return poll(ctx, principal, session_id, after, limit).view


def poll(ctx: AppContext, principal: Principal, session_id: str, after: int, limit: int) -> Poll:
    """`read`, with the session's next deadline (the long poll wakes then to settle it)."""
    with ctx.db.transaction() as tx:
        session = _party(principal, sessions.get(tx, session_id))
        rows = sessions.messages_after(tx, session_id, after, limit)
        peer = _peer(principal)
        peer_read = store.read_marker(tx, session_id, peer, session[f"{peer}_id"])
    if settle.settle(ctx, [session]):
        # Past its deadline (docs/chat.md): ended/expired now, with its system message; read again.
        return poll(ctx, principal, session_id, after, limit)
    messages = [sessions.message_json(r) for r in rows]
    view = {
        "messages": messages,
        "next_after": messages[-1]["id"] if messages else after,
        "session_status": session["status"],
        "peer_last_read_id": peer_read,
    }
    return Poll(view, states.next_deadline(session, timedelta(seconds=ctx.settings.pairing_timeout_seconds)))


def read_before(ctx: AppContext, principal: Principal, session_id: str, before: int, limit: int) -> dict[str, Any]:
    """The newest `limit` messages before id `before` (0: the latest ones), oldest first.

    `next_before` pages further back (null when nothing older remains); `next_after` is where
    the forward poll continues from a latest page (docs/chat.md, "The latest messages").
    """
    with ctx.db.transaction() as tx:
        session = _party(principal, sessions.get(tx, session_id))
        rows, older = store.before(tx, session_id, before, limit)
        peer = _peer(principal)
        peer_read = store.read_marker(tx, session_id, peer, session[f"{peer}_id"])
    if settle.settle(ctx, [session]):
        return read_before(ctx, principal, session_id, before, limit)
    messages = [sessions.message_json(r) for r in rows]
    return {
        "messages": messages,
        "next_after": messages[-1]["id"] if messages else 0,
        "next_before": messages[0]["id"] if messages and older else None,
        "session_status": session["status"],
        "peer_last_read_id": peer_read,
    }


def mark_read(ctx: AppContext, principal: Principal, session_id: str, up_to: int) -> dict[str, Any]:
    """Move the caller's read marker to `up_to` (clamped to the last message); never back."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        session = _party(principal, sessions.get(tx, session_id))
        target = min(up_to, store.last_id(tx, session_id))
        before = store.read_marker(tx, session_id, principal.user_type, principal.user_id)
        marker = store.move_read_marker(tx, session_id, principal.user_type, principal.user_id, target, now)
        if marker != before:  # the other side's feed carries the read marker (docs/events.md)
            peer = _peer(principal)
            feed.add(tx, peer, session[f"{peer}_id"], feed.READ_MARKER, now, session_id, last_read_id=marker)
        tx.commit()
    if marker != before:
        effects.wake_readers(ctx, session_id)  # the other side's wait answers the new marker
    return {"session_id": session_id, "last_read_id": marker}


# ---- the event feed's read (the long poll around it is shared.chat.longpoll.events) -------------


def feed_poll(ctx: AppContext, principal: Principal, after: int | None, limit: int) -> Poll:
    """The caller's events after `after`, once its overdue sessions are settled; and the next deadline.

    Settling here is what makes the feed alone enough (docs/events.md): a session that ends or
    an offer that expires while nobody else reads it is moved by the feed's own read (or its
    wait, which wakes at the deadline), and the events of that move are then in the feed.
    """
    user_type, user_id = principal.user_type, principal.user_id
    with ctx.db.transaction() as tx:
        live = sessions.live_of(tx, user_type, user_id)
        view = feed.read(tx, user_type, user_id, after, limit)
    if settle.settle(ctx, live):
        return feed_poll(ctx, principal, after, limit)
    timeout = timedelta(seconds=ctx.settings.pairing_timeout_seconds)
    deadlines = [d for d in (states.next_deadline(row, timeout) for row in live) if d is not None]
    return Poll(view, min(deadlines, default=None))
