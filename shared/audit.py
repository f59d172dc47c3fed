"""The control-center audit trail: one `cc_audit_log` row per change, with its actor.

Actions are `<target>.<verb>` (customer.block, mitra.deactivate, cc_user.update, ...); the
actor is `cc:<user id>`. The service that makes a change writes its row inside the change's
own transaction (`record`), so the change and its audit row commit together or not at all.
A change with no Postgres write of its own (lifting a login lock in Valkey) is recorded in a
transaction of its own (`record_now`).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from shared.context import AppContext
from shared.db import Tx

log = logging.getLogger(__name__)


def record(
    tx: Tx,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row inside the caller's transaction."""
    tx.execute(
        "INSERT INTO cc_audit_log (actor, action, target_type, target_id, at, detail)"
        " VALUES (:actor, :action, :tt, :tid, :at, CAST(:detail AS jsonb))",
        actor=actor,
        action=action,
        tt=target_type,
        tid=target_id,
        at=at,
        detail=json.dumps(detail or {}, default=str),
    )


def record_now(
    ctx: AppContext, actor: str, action: str, target_type: str, target_id: str, detail: dict[str, Any] | None = None
) -> None:
    """Append one audit row in a transaction of its own (a change that wrote nothing to Postgres)."""
    with ctx.db.transaction() as tx:
        record(tx, actor, action, target_type, target_id, ctx.now(), detail)
        tx.commit()
    log.info("control-center change", extra={"actor": actor, "action": action, "target": f"{target_type}:{target_id}"})


def for_target(ctx: AppContext, target_type: str, target_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest audit rows about one target, newest first."""
    rows = ctx.db.rows(
        "SELECT id, actor, action, at, detail FROM cc_audit_log"
        " WHERE target_type = :tt AND target_id = :tid ORDER BY id DESC LIMIT :n",
        tt=target_type,
        tid=target_id,
        n=limit,
    )
    return [
        {"id": r["id"], "actor": r["actor"], "action": r["action"], "at": r["at"].isoformat(), "detail": r["detail"]}
        for r in rows
    ]


def page_rows(
    ctx: AppContext,
    *,
    actor: str | None,
    action: str | None,
    target_type: str | None,
    target_id: str | None,
    start: datetime | None,
    end: datetime | None,
    before_id: int | None,
    n: int,
) -> list[dict[str, Any]]:
    """Up to `n` rows, newest first (by id), matching every filter given; `[start, end)` on `at`."""
    return ctx.db.rows(
        "SELECT id, actor, action, target_type, target_id, at, detail FROM cc_audit_log"
        " WHERE (CAST(:actor AS text) IS NULL OR actor = :actor)"
        " AND (CAST(:action AS text) IS NULL OR action = :action)"
        " AND (CAST(:tt AS text) IS NULL OR target_type = :tt)"
        " AND (CAST(:tid AS text) IS NULL OR target_id = :tid)"
        " AND (CAST(:start AS timestamptz) IS NULL OR at >= :start)"
        " AND (CAST(:end AS timestamptz) IS NULL OR at < :end)"
        " AND (CAST(:before AS bigint) IS NULL OR id < :before)"
        " ORDER BY id DESC LIMIT :n",
        actor=actor,
        action=action,
        tt=target_type,
        tid=target_id,
        start=start,
        end=end,
        before=before_id,
        n=n,
    )


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """One audit row as the control center shows it."""
    return {
        "id": row["id"],
        "actor": row["actor"],
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "at": row["at"].isoformat(),
        "detail": row["detail"],
    }
