"""What follows a committed transition: the readers' wake-up, the mirror's capacity, the pushes.

All run after Postgres committed and are best-effort: a Valkey or push failure is logged
and never undoes the transition (the reseed sweep heals the mirror; apps also poll).
The wake-up is a publish on the Valkey channel `Keys.chat_wake` that every instance's chat
listener (shared.chat.longpoll) turns into wake-ups of its long-polling readers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from shared import availability, notify
from shared.context import AppContext
from shared.db import Row
from shared.sessions.states import end_reason_for_mitra
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)


def recompute(ctx: AppContext, mitra_ids: Iterable[Any]) -> None:
    """Re-derive each mitra's used capacity from Postgres and write it to the mirror."""
    for mitra_id in sorted({str(m) for m in mitra_ids if m}):
        try:
            availability.recompute_capacity(ctx, mitra_id)
        except Exception:  # Postgres committed; the reseed sweep heals the mirror
            log.exception("capacity recompute failed", extra={"mitra_id": mitra_id})


def push(
    ctx: AppContext, user_type: str, user_ids: Iterable[Any], kind: str, session: Mapping[str, Any], **extra: Any
) -> None:
    """Send a `kind` data message about `session` to every device of these users."""
    ids = [str(i) for i in user_ids if i]
    if not ids:
        return
    data = {"type": kind, "session_id": str(session["id"]), "status": str(session["status"])}
    data.update({k: "" if v is None else str(v) for k, v in extra.items()})
    notify.send(ctx, user_type, ids, data)


def wake_readers(ctx: AppContext, *session_ids: Any) -> None:
    """Wake every reader of these sessions on every instance; after commit, best-effort."""
    ids = sorted({str(s) for s in session_ids if s})
    if not ids:
        return
    try:
        for session_id in ids:
            ctx.valkey.publish(ctx.keys.chat_wake, session_id)
    except VALKEY_ERRORS as exc:  # readers still see the row on their next poll
        log.warning("chat wake publish failed", extra={"error": type(exc).__name__})


def after_closed(ctx: AppContext, closed: list[Row], *, tell_customer: bool = False) -> None:
    """After a `store.close_*` committed: free the mitras' capacity in the mirror and tell them.

    `tell_customer`: the customer did not close it (a deactivated mitra, staff), so they are
    pushed `session_ended` with the end reason too.
    """
    recompute(ctx, (row["mitra_id"] for row in closed))
    wake_readers(ctx, *(row["id"] for row in closed))
    for row in closed:
        if row["mitra_id"]:
            push(
                ctx,
                "mitra",
                [row["mitra_id"]],
                "session_ended",
                row,
                end_reason=end_reason_for_mitra(row["end_reason"]),
            )
        push(ctx, "mitra", row["lost"], "offer_closed", row)
        if tell_customer:
            push(ctx, "customer", [row["customer_id"]], "session_ended", row, end_reason=row["end_reason"])
