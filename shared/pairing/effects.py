"""What follows a committed transition: the mirror's capacity and the pushes.

Both run after Postgres committed and are best-effort: a Valkey or push failure is logged
and never undoes the transition (the reseed sweep heals the mirror; apps also poll).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from shared import availability, notify
from shared.context import AppContext

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
