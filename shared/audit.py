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
