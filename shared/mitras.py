"""Mitra accounts and their status log in Postgres (the truth the availability mirror is derived from).

The SQL of `mitras` and `mitra_status_logs` lives here; orchestration of status changes
(Postgres first, then the mirror) lives in shared.availability.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared import paging, validate
from shared.context import AppContext
from shared.db import Tx
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed

MITRA_COLUMNS = (
    "id, phone_e164, display_name, is_active, is_online, max_concurrent_sessions,"
    " last_heartbeat_at, created_at, updated_at"
)


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a mitra row."""
    return {
        "id": str(row["id"]),
        "phone": row["phone_e164"],
        "display_name": row["display_name"],
        "is_active": row["is_active"],
        "is_online": row["is_online"],
        "max_concurrent_sessions": row["max_concurrent_sessions"],
        "last_heartbeat_at": row["last_heartbeat_at"].isoformat() if row["last_heartbeat_at"] else None,
        "created_at": row["created_at"].isoformat(),
    }


def seed_mitra(
    ctx: AppContext, phone_e164: str, display_name: str | None = None, is_active: bool = True
) -> tuple[dict[str, Any], bool]:
    """Create a mitra, or return the existing one with that phone unchanged; (mitra, created).

    The test route's helper: `display_name` defaults to "Mitra <last 4 digits>", and
    `is_active=False` creates a deactivated mitra directly.
    """
    with ctx.db.transaction() as tx:
        row = tx.one(
            f"INSERT INTO mitras (phone_e164, display_name, is_active) VALUES (:p, :n, :a)"  # noqa: S608
            f" ON CONFLICT (phone_e164) DO NOTHING RETURNING {MITRA_COLUMNS}",
            p=phone_e164,
            n=display_name or f"Mitra {phone_e164[-4:]}",
            a=is_active,
        )
        created = row is not None
        if row is None:
            row = tx.one(f"SELECT {MITRA_COLUMNS} FROM mitras WHERE phone_e164 = :p", p=phone_e164)  # noqa: S608
        tx.commit()
    assert row is not None
    return to_json(row), created


# ---- rows (used by shared.availability's write paths and the control center) -----------------


def deactivated_since(tx: Tx, since: datetime) -> list[str]:
    """Ids of inactive mitras changed at or after `since` (access removals the mirror may lack)."""
    rows = tx.rows("SELECT id FROM mitras WHERE NOT is_active AND updated_at >= :since", since=since)
    return [str(r["id"]) for r in rows]


def get(tx: Tx, mitra_id: str, *, for_update: bool = False) -> dict[str, Any] | None:
    """One mitra row (locked for the transaction when `for_update`)."""
    lock = " FOR UPDATE" if for_update else ""
    return tx.one(f"SELECT {MITRA_COLUMNS} FROM mitras WHERE id = CAST(:id AS uuid){lock}", id=mitra_id)  # noqa: S608


def require(tx: Tx, mitra_id: str, *, for_update: bool = False) -> dict[str, Any]:
    """The mitra row, or 404 MITRA_NOT_FOUND."""
    row = get(tx, mitra_id, for_update=for_update)
    if row is None:
        raise NotFound("no such mitra", code="MITRA_NOT_FOUND")
    return row


def require_active_by_phone(tx: Tx, phone_e164: str) -> dict[str, Any]:
    """The mitra with that phone, or 404 MITRA_NOT_FOUND / 403 ACCOUNT_INACTIVE (OTP sign-in)."""
    row = tx.one(f"SELECT {MITRA_COLUMNS} FROM mitras WHERE phone_e164 = :p", p=phone_e164)  # noqa: S608
    if row is None:
        raise NotFound("no mitra account has this phone number", code="MITRA_NOT_FOUND")
    if not row["is_active"]:
        raise Forbidden("this mitra account is deactivated", code="ACCOUNT_INACTIVE")
    return row


def create(tx: Tx, phone_e164: str, display_name: str, max_sessions: int | None) -> dict[str, Any]:
    """Insert a mitra (offline, active); 409 PHONE_TAKEN when the phone is registered."""
    row = tx.one(
        "INSERT INTO mitras (phone_e164, display_name, max_concurrent_sessions) VALUES (:p, :n, :m)"  # noqa: S608
        f" ON CONFLICT (phone_e164) DO NOTHING RETURNING {MITRA_COLUMNS}",
        p=phone_e164,
        n=display_name,
        m=max_sessions,
    )
    if row is None:
        raise Conflict("a mitra with this phone already exists", code="PHONE_TAKEN")
    return row


def update(tx: Tx, mitra_id: str, now: datetime, **fields: Any) -> dict[str, Any]:
    """Set the given columns (is_online, is_active, display_name, max_concurrent_sessions, last_heartbeat_at)."""
    allowed = ("is_online", "is_active", "display_name", "max_concurrent_sessions", "last_heartbeat_at")
    assignments = ", ".join(f"{name} = :{name}" for name in fields if name in allowed)
    if len(fields) != len([f for f in fields if f in allowed]):
        raise ValueError(f"unknown mitra columns in {sorted(fields)}")
    row = tx.one(
        f"UPDATE mitras SET {assignments}, updated_at = :now"  # noqa: S608 (column names from the allow-list)
        f" WHERE id = CAST(:id AS uuid) RETURNING {MITRA_COLUMNS}",
        id=mitra_id,
        now=now,
        **fields,
    )
    assert row is not None
    return row


def log_status(
    tx: Tx, mitra_id: str, event: str, actor: str, at: datetime, detail: dict[str, Any] | None = None
) -> None:
    """Append one mitra_status_logs row (every status change writes one)."""
    tx.execute(
        "INSERT INTO mitra_status_logs (mitra_id, event, actor, at, detail)"
        " VALUES (CAST(:id AS uuid), :event, :actor, :at, CAST(:detail AS jsonb))",
        id=mitra_id,
        event=event,
        actor=actor,
        at=at,
        detail=json.dumps(detail or {}),
    )


# One statement: offline the stale mitras that are still online, keep the mirror's last ping
# (never older than what Postgres has), and write one status log row per mitra offlined. The
# ids and pings arrive as two comma-separated strings (one compact parameter each); only the
# count comes back.
_OFFLINE_STALE = """
WITH stale AS (
    SELECT id, to_timestamp(ms / 1000.0) AS ping
    FROM unnest(CAST(string_to_array(:ids, ',') AS uuid[]), CAST(string_to_array(:ms, ',') AS bigint[])) AS s(id, ms)
), offlined AS (
    UPDATE mitras AS m
    SET is_online = false, updated_at = :now,
        last_heartbeat_at = GREATEST(m.last_heartbeat_at, stale.ping)
    FROM stale
    WHERE m.id = ANY(CAST(string_to_array(:ids, ',') AS uuid[])) AND m.id = stale.id AND m.is_online
    RETURNING m.id, m.last_heartbeat_at
), logged AS (
    INSERT INTO mitra_status_logs (mitra_id, event, actor, at, detail)
    SELECT id, 'auto_offline', :actor, :now, jsonb_build_object('last_heartbeat_at', last_heartbeat_at)
    FROM offlined
    RETURNING 1
)
SELECT count(*) FROM logged
"""


def offline_stale(tx: Tx, ids_csv: str, ms_csv: str, actor: str, now: datetime) -> int:
    """Set offline those of the mitras still online (ids and their last pings in epoch ms, as
    comma-separated strings), logging `auto_offline` for each; return how many were offlined.
    The pings raise `last_heartbeat_at`, never lower it.

    A handful of stale mitras among many: the planner would hash every mitra (a sequential scan
    costing more than the whole update) where one primary-key probe per id is what it takes,
    so this transaction plans without sequential scans.
    """
    if not ids_csv:
        return 0
    tx.script("SET LOCAL enable_seqscan = off")
    return int(tx.scalar(_OFFLINE_STALE, ids=ids_csv, ms=ms_csv, now=now, actor=actor))


# The heartbeat-mirror sweep's write: move each mitra's ping in the narrow `mitra_pings` table
# forward (a HOT update: the key never changes and pages keep free space). A plain UPDATE costs
# less per row than INSERT … ON CONFLICT (a speculative insertion and an extra index probe each);
# mitras without a row yet (their first ping ever mirrored) get one from a second statement, run
# only when the UPDATE moved fewer rows than it was given.
_MOVE_PINGS = """
UPDATE mitra_pings AS p SET at = u.at
FROM (
    SELECT id, to_timestamp(ms::float8 / 1000) AS at
    FROM unnest(CAST(string_to_array(:ids, ',') AS uuid[]), CAST(string_to_array(:ms, ',') AS bigint[])) AS u(id, ms)
) AS u
WHERE p.mitra_id = u.id AND p.at < u.at
"""
_ADD_PINGS = """
INSERT INTO mitra_pings AS p (mitra_id, at)
SELECT u.id, to_timestamp(max(u.ms)::float8 / 1000)
FROM unnest(CAST(string_to_array(:ids, ',') AS uuid[]), CAST(string_to_array(:ms, ',') AS bigint[])) AS u(id, ms)
JOIN mitras m ON m.id = u.id
WHERE NOT EXISTS (SELECT 1 FROM mitra_pings q WHERE q.mitra_id = u.id)
GROUP BY u.id
ON CONFLICT (mitra_id) DO UPDATE SET at = EXCLUDED.at WHERE p.at < EXCLUDED.at
"""


def record_heartbeat(tx: Tx, mitra_id: str, at: datetime) -> None:
    """Write a ping to last_heartbeat_at of an online, active mitra (never moving it back)."""
    tx.execute(
        "UPDATE mitras SET last_heartbeat_at = GREATEST(last_heartbeat_at, :at)"
        " WHERE id = CAST(:id AS uuid) AND is_online AND is_active",
        id=mitra_id,
        at=at,
    )


def record_pings(tx: Tx, ids_csv: str, ms_csv: str, count: int) -> int:
    """Write `count` pings (ids and epoch ms as comma-separated strings), never moving one back;
    pings of unknown mitras are dropped. Returns the rows written.

    Called once per chunk of the heartbeat-mirror pass: each id is one primary-key probe (a hash
    of the whole table per chunk would cost more than the chunk's updates). The commit need not
    wait for the WAL flush: a pass lost in a crash is written again by the pings that follow,
    and the mirror keeps them meanwhile. A mitra read twice (its ping moved while the sweep
    paged) moves forward to the later of its two pings, never back.
    """
    if not count:
        return 0
    tx.script("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL synchronous_commit = off")
    moved = tx.execute(_MOVE_PINGS, ids=ids_csv, ms=ms_csv)
    if moved == count:
        return moved
    added = tx.execute(_ADD_PINGS, ids=ids_csv, ms=ms_csv)
    if added:
        _keep_ping_statistics(tx)
    return moved + added


def _keep_ping_statistics(tx: Tx) -> None:
    """ANALYZE mitra_pings when this transaction alone has inserted more than twice the rows the
    planner believes the table holds.

    A first pass fills the table inside one transaction (a million rows at a million online).
    Planned on the statistics of the empty table, every later statement takes mitra_pings as
    the outer side of its nested loop and reads the chunk's ids once per row it finds there:
    quadratic (one 10,000-ping statement ran past a 300 s timeout at a million). ANALYZE
    counts the rows this transaction inserted, so the estimate stays within 2x of the truth
    with about log2(rows / chunk) runs per first pass, and none in the steady state.
    """
    row = tx.one(
        "SELECT c.reltuples, x.n_tup_ins FROM pg_class c JOIN pg_stat_xact_user_tables x ON x.relid = c.oid"
        " WHERE c.oid = CAST('mitra_pings' AS regclass)"
    )
    if row is not None and max(float(row["reltuples"]), 0) * 2 < int(row["n_tup_ins"]):
        tx.script("ANALYZE mitra_pings")


MITRA_STATUSES = ("online", "offline", "deactivated")
# status filter -> its constant SQL condition (never built from input).
_STATUS_WHERE = {
    None: "true",
    "online": "is_active AND is_online",
    "offline": "is_active AND NOT is_online",
    "deactivated": "NOT is_active",
}


def list_page(
    ctx: AppContext, limit: int, cursor: str | None, *, search: str | None = None, status: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Mitras newest first, keyset-paginated, optionally searched (phone, name) and filtered by status.

    `status` is the Postgres truth: online = active and is_online, offline = active and not
    online, deactivated = not active. Returns (rows, next cursor or None).
    """
    rows = ctx.db.rows(
        f"SELECT {MITRA_COLUMNS} FROM mitras"  # noqa: S608 (constant columns and status condition)
        f" WHERE ({_STATUS_WHERE[status]})"
        " AND (CAST(:after_at AS timestamptz) IS NULL OR (created_at, id) < (:after_at, CAST(:after_id AS uuid)))"
        " AND (CAST(:q AS text) IS NULL OR display_name ILIKE :q OR phone_e164 LIKE CAST(:q_phone AS text)"
        "      OR phone_e164 LIKE CAST(:phone AS text) OR phone_e164 LIKE CAST(:phone_prefix AS text))"
        " ORDER BY created_at DESC, id DESC LIMIT :n",
        n=limit + 1,
        **paging.after("mitras", cursor),
        **paging.search_params(search),
    )
    cut = paging.page("mitras", rows, limit, lambda r: (r["created_at"], r["id"]))
    return cut.rows, cut.next_cursor


LOGS_CURSOR = "mitra_logs"


def logs(ctx: AppContext, mitra_id: str, limit: int, before: int | None, cursor: str | None = None) -> dict[str, Any]:
    """A mitra's status log, newest first: {logs, next_cursor, next_before}; 404 for an unknown mitra.

    Pages with `cursor` like every list (shared.paging); `before` (a log id, with `next_before`)
    is the deprecated form, still accepted (docs/api.md, "Paging").
    """
    key = paging.decode(LOGS_CURSOR, cursor, (paging.row_id,))
    if key is not None:
        before = key[0]
    with ctx.db.transaction() as tx:
        require(tx, mitra_id)
        rows = tx.rows(
            "SELECT id, event, actor, at, detail FROM mitra_status_logs"
            " WHERE mitra_id = CAST(:id AS uuid) AND (CAST(:before AS bigint) IS NULL OR id < :before)"
            " ORDER BY id DESC LIMIT :n",
            id=mitra_id,
            before=before,
            n=limit + 1,
        )
    page = paging.page(LOGS_CURSOR, rows, limit, lambda r: (r["id"],))
    out = [
        {"id": r["id"], "event": r["event"], "actor": r["actor"], "at": r["at"].isoformat(), "detail": r["detail"]}
        for r in page.rows
    ]
    next_before = page.rows[-1]["id"] if page.next_cursor else None
    return {"mitra_id": mitra_id, "logs": out, "next_cursor": page.next_cursor, "next_before": next_before}


NAME_MAX = 80
MAX_SESSIONS_MAX = 100


def parse_max_sessions(body: dict[str, Any]) -> int | None:
    """The optional per-mitra max concurrent sessions (null = the app_config default)."""
    return validate.integer(body, "max_concurrent_sessions", required=False, minimum=0, maximum=MAX_SESSIONS_MAX)


def parse_edit(body: dict[str, Any]) -> dict[str, Any]:
    """The columns a PATCH changes: display_name, max_concurrent_sessions (null clears the override)."""
    changes: dict[str, Any] = {}
    if "display_name" in body:
        changes["display_name"] = validate.string(body, "display_name", max_len=NAME_MAX)
    if "max_concurrent_sessions" in body:
        changes["max_concurrent_sessions"] = parse_max_sessions(body)
    if not changes:
        raise ValidationFailed("body", "give display_name and/or max_concurrent_sessions")
    return changes
