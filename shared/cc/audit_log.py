"""The global control-center audit log: every row of `cc_audit_log`, newest first, filtered.

Filters combine (AND): the actor (`cc:<user id>`), the action, the target (its type, and an id
of that type) and a half-open time range on `at`. Paging is keyset on the row id (ids grow
with time), with an opaque cursor (shared.paging); a filtered list pages the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import audit, paging
from shared.context import AppContext
from shared.errors import ValidationFailed

LIST = "audit-log"  # the cursor tag
# The target types cc_audit_log's CHECK constraint allows (migrations/0007_control_center.sql).
TARGET_TYPES = ("mitra", "customer", "cc_user", "app_config", "chat_session")
TEXT_MAX = 200


@dataclass(frozen=True)
class Filters:
    """What the audit log is narrowed to (None: any)."""

    actor: str | None
    action: str | None
    target_type: str | None
    target_id: str | None
    window: paging.TimeRange


def filters(
    *,
    actor: str | None,
    action: str | None,
    target_type: str | None,
    target_id: str | None,
    window: paging.TimeRange,
) -> Filters:
    """Checked filters: bounded text, a known target type, and a target id only with its type (400 otherwise)."""
    for name, value in (("actor", actor), ("action", action), ("target_id", target_id)):
        if value is not None and len(value) > TEXT_MAX:
            raise ValidationFailed(name, f"must be at most {TEXT_MAX} characters")
    if target_type is not None and target_type not in TARGET_TYPES:
        raise ValidationFailed("target_type", f"must be one of {', '.join(TARGET_TYPES)}")
    if target_id is not None and target_type is None:
        raise ValidationFailed("target_id", "needs target_type (ids of different types may look alike)")
    return Filters(actor or None, action or None, target_type, target_id or None, window)


def list_entries(ctx: AppContext, limit: int, cursor: str | None, where: Filters) -> dict[str, Any]:
    """A page of the audit log, newest first."""
    key = paging.decode(LIST, cursor, (paging.row_id,))
    rows = audit.page_rows(
        ctx,
        actor=where.actor,
        action=where.action,
        target_type=where.target_type,
        target_id=where.target_id,
        start=where.window.start,
        end=where.window.end,
        before_id=key[0] if key else None,
        n=limit + 1,
    )
    cut = paging.page(LIST, rows, limit, lambda r: (r["id"],))
    return {"audit_log": [audit.to_json(r) for r in cut.rows], "next_cursor": cut.next_cursor}
