"""Customers in the control center: search, view, block and unblock.

Blocking is one Postgres transaction: the customer row is locked and marked blocked, every
auth session of the customer is revoked (`revocation.take_access_away`, as a mitra
deactivation does), every open chat session is ended (`sessions.store.close_open_of_customer`)
with its money closed (`payments.service.close_for`: pending payments failed, unused paid time
owed back) and the audit row is written; the revocations are marked in Valkey before the commit
(`{avail}:revoked:<sid>`, so the tokens die at once; a failed mark makes the instance stop
trusting the mirror until it is repaired from Postgres). After the commit the mitras' freed
capacity is re-derived into the mirror and they are pushed.
Sign-in of a blocked customer is refused in shared.auth.customers (403 ACCOUNT_BLOCKED).
The customer row lock serializes a block with a concurrent sign-in (which locks the same
row), so no session is created after the block that the block did not revoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared import audit, feed, paging
from shared.auth import customers as auth_customers
from shared.auth import revocation
from shared.context import AppContext
from shared.db import Row
from shared.errors import NotFound
from shared.payments import service as payments
from shared.sessions import effects, settle, states, store

COLUMNS = f"{auth_customers.COLUMNS}, blocked_by"
BLOCK_REASON = states.CUSTOMER_BLOCKED
REASON_MAX = 500


def to_json(row: Row) -> dict[str, Any]:
    """A customer as the control center sees it (profile plus block state)."""
    return {
        **auth_customers.to_json(row),
        "blocked": row["blocked_at"] is not None,
        "blocked_at": row["blocked_at"].isoformat() if row["blocked_at"] else None,
        "blocked_by": row["blocked_by"],
    }


def _not_found() -> NotFound:
    return NotFound("customer not found", code="CUSTOMER_NOT_FOUND")


@dataclass(frozen=True)
class CustomerFilters:
    """What the customer list is narrowed to (None: any): block state, anonymity, creation time."""

    blocked: bool | None = None
    anonymous: bool | None = None
    created: paging.TimeRange = field(default_factory=lambda: paging.TimeRange(None, None))


_PAGE_WHERE = (
    " (CAST(:after_at AS timestamptz) IS NULL OR (created_at, id) < (:after_at, CAST(:after_id AS uuid)))"
    " AND (CAST(:blocked AS boolean) IS NULL OR (blocked_at IS NOT NULL) = :blocked)"
    " AND (CAST(:anonymous AS boolean) IS NULL OR is_anonymous = :anonymous)"
    " AND (CAST(:created_from AS timestamptz) IS NULL OR created_at >= :created_from)"
    " AND (CAST(:created_to AS timestamptz) IS NULL OR created_at < :created_to)"
)
NEWEST_FIRST = " ORDER BY created_at DESC, id DESC"

# Every match through an index: trigram GIN for the substrings, the B-tree for a number's start.
LIST_SQL = (
    f"SELECT {COLUMNS} FROM customers WHERE {_PAGE_WHERE}"  # noqa: S608 (constant columns and conditions)
    " AND (CAST(:q AS text) IS NULL OR display_name ILIKE :q OR email ILIKE :q"
    "      OR phone_e164 LIKE CAST(:q_phone AS text) OR phone_e164 LIKE CAST(:phone AS text)"
    "      OR phone_e164 LIKE CAST(:phone_prefix AS text))"
    f"{NEWEST_FIRST} LIMIT :n"
)

# The same matches, tested row by row over the newest `:window` customers of the page, then the
# page's rows read by id. The walk is an index-only scan of customers_search_walk (migration
# 0037: the keyset order carrying `search_text` and the phone), so it reads no table page and
# lowers nothing per row: `search_text` is the display name and the email lowered once, on
# write, joined by SEPARATOR (0035). ILIKE in a UTF-8 database compares lower() of both sides
# (Generic_Text_IC_like in
# https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/utils/adt/like.c), so
# strpos of the lowered term in it finds exactly the rows ILIKE finds in either column, as long
# as the term holds no SEPARATOR (which could span the two; such a term reads the indexes).
SEPARATOR = "\x01"
SCAN_SQL = (
    f"SELECT {COLUMNS} FROM customers WHERE id = ANY(ARRAY("  # noqa: S608 (constant columns and conditions)
    "  SELECT id FROM"
    f"  (SELECT id, created_at, search_text, phone_e164 FROM customers WHERE {_PAGE_WHERE}{NEWEST_FIRST}"
    "    LIMIT :window) AS newest"
    "  WHERE strpos(search_text, lower(CAST(:needle AS text))) > 0"
    "   OR (CAST(:q_phone AS text) IS NOT NULL AND strpos(phone_e164, CAST(:needle AS text)) > 0)"
    "   OR strpos(phone_e164, CAST(:digits AS text)) > 0 OR starts_with(phone_e164, CAST(:prefix AS text))"
    f" {NEWEST_FIRST} LIMIT :n))"
    f"{NEWEST_FIRST}"
)
# A search first tests the newest PROBE_ROWS customers of the page. When they hold too few
# matches, their share m / PROBE_ROWS estimates both ways on: walking on fills the page after
# about n * PROBE_ROWS / m rows, the indexes fetch about m / PROBE_ROWS * (table rows) matches,
# each costing about MATCH_COST walked rows (GIN entries and a heap page: EXPLAIN ANALYZE at
# 1M customers gave about 30 µs a match against about 0.3 µs a walked row of the index-only
# walk, docs/control-center.md). It walks on (at most SCAN_ROWS) when the page is expected
# within half of that and the walk is cheaper, else reads the indexes; a walk that still falls
# short of a page is followed by the indexes, which are exact whatever a window found.
PROBE_ROWS = 2_000
SCAN_ROWS = 120_000
MATCH_COST = 100
TABLE_ROWS_SQL = "SELECT reltuples FROM pg_class WHERE oid = CAST('customers' AS regclass)"


def list_params(limit: int, cursor: str | None, search: str | None, where: CustomerFilters) -> dict[str, Any]:
    """The bind parameters of LIST_SQL (and SCAN_SQL, with `window`) for one page."""
    return {
        "n": limit + 1,
        "blocked": where.blocked,
        "anonymous": where.anonymous,
        "created_from": where.created.start,
        "created_to": where.created.end,
        **paging.after("customers", cursor),
        **paging.search_params(search),
    }


def _search_rows(ctx: AppContext, params: dict[str, Any]) -> list[Row]:
    """The page's rows of a search: newest-first walk when the term is common, else the indexes.

    A common term ("dewi") fills a page within a few thousand of the newest rows, while the
    indexes would fetch every one of its matches before keeping the newest; a rare term is
    the other way round (docs/control-center.md, "Paging and search").
    """
    wanted = params["n"]
    if SEPARATOR in params["needle"]:  # could match across the name and the email in search_text
        return ctx.db.rows(LIST_SQL, **params)
    rows = ctx.db.rows(SCAN_SQL, window=PROBE_ROWS, **params)
    found = len(rows)
    if 0 < found < wanted:
        walk = wanted * PROBE_ROWS / found
        table_rows = ctx.db.scalar(TABLE_ROWS_SQL) or -1  # -1: never analyzed (a new, small table)
        if walk <= SCAN_ROWS / 2 and walk < MATCH_COST * found / PROBE_ROWS * table_rows:
            rows = ctx.db.rows(SCAN_SQL, window=SCAN_ROWS, **params)
    if len(rows) < wanted:
        rows = ctx.db.rows(LIST_SQL, **params)
    return rows


def list_customers(
    ctx: AppContext,
    limit: int,
    cursor: str | None,
    search: str | None,
    where: CustomerFilters | None = None,
) -> dict[str, Any]:
    """Customers newest first; `search` matches phone (0812… finds +62812…), name or email; filters combine.

    Each branch of the search's OR has an index (trigram GIN, migrations 0028 to 0030; a B-tree
    for a number's start, 0033), and a common term walks the newest rows instead, on an index
    carrying what it tests (`_search_rows`, 0035 to 0037; docs/control-center.md, "Paging and search").
    """
    params = list_params(limit, cursor, search, where or CustomerFilters())
    rows = _search_rows(ctx, params) if search else ctx.db.rows(LIST_SQL, **params)
    cut = paging.page("customers", rows, limit, lambda r: (r["created_at"], r["id"]))
    return {"customers": [to_json(r) for r in cut.rows], "next_cursor": cut.next_cursor}


def get_customer(ctx: AppContext, customer_id: str) -> dict[str, Any]:
    """One customer with their open session (settled), session counts and recent audit rows."""
    with ctx.db.transaction() as tx:
        row = tx.one(f"SELECT {COLUMNS} FROM customers WHERE id = CAST(:id AS uuid)", id=customer_id)  # noqa: S608
        if row is None:
            raise _not_found()
        open_row = store.open_session_of(tx, customer_id)
    if open_row is not None and settle.settle(ctx, [open_row]):
        with ctx.db.transaction() as tx:
            open_row = store.open_session_of(tx, customer_id)
    with ctx.db.transaction() as tx:
        counts = store.status_counts_of_customer(tx, customer_id)
        open_view = store.to_json(open_row, store.offered_count(tx, str(open_row["id"]))) if open_row else None
    return {
        **to_json(row),
        "open_session": open_view,
        "session_counts": counts,
        "audit": audit.for_target(ctx, "customer", customer_id),
    }


def block(ctx: AppContext, customer_id: str, actor: str, reason: str | None) -> dict[str, Any]:
    """Block: mark, revoke every session, end open chat sessions, audit; then mirror and pushes.

    Repeating it is harmless: an already blocked customer stays blocked (blocked_at kept) and
    only sessions still open are revoked or ended (an audit row is written when one was).
    """
    with ctx.db.transaction() as tx:
        open_row = store.open_session_of(tx, customer_id)
    if open_row is not None:
        settle.settle(ctx, [open_row])  # an overdue session ends for its own reason first
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = tx.one(f"SELECT {COLUMNS} FROM customers WHERE id = CAST(:id AS uuid) FOR UPDATE", id=customer_id)  # noqa: S608
        if row is None:
            raise _not_found()
        newly = row["blocked_at"] is None
        if newly:
            row = tx.one(
                "UPDATE customers SET blocked_at = :now, blocked_by = :actor, updated_at = :now"  # noqa: S608
                f" WHERE id = CAST(:id AS uuid) RETURNING {COLUMNS}",
                now=now,
                actor=actor,
                id=customer_id,
            )
            assert row is not None
            feed.add(tx, "customer", customer_id, feed.ACCOUNT, now, status="blocked")  # docs/events.md
        revoked = revocation.take_access_away(ctx, tx, reason=BLOCK_REASON, user_type="customer", user_id=customer_id)
        closed = store.close_open_of_customer(tx, customer_id, actor, BLOCK_REASON, now)
        # Money (docs/payments.md, "Closing"): nothing stays payable, unused paid time is owed back.
        closed_payments, owed = payments.close_for(tx, closed, actor, BLOCK_REASON, now)
        ended = [str(r["id"]) for r in closed]
        if newly or revoked or closed:
            detail = {"reason": reason, "revoked_sessions": len(revoked), "ended_chat_sessions": ended}
            if owed:
                detail["refund_due_idr"] = owed
            audit.record(tx, actor, "customer.block", "customer", customer_id, now, detail)
        tx.commit()
    effects.after_closed(ctx, closed)
    payments.cancel_at_provider(ctx, closed_payments)
    return {**to_json(row), "revoked_sessions": len(revoked), "ended_chat_sessions": ended}


def unblock(ctx: AppContext, customer_id: str, actor: str) -> dict[str, Any]:
    """Unblock (sign-in works again; revoked sessions stay revoked); audited when it changed anything."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = tx.one(f"SELECT {COLUMNS} FROM customers WHERE id = CAST(:id AS uuid) FOR UPDATE", id=customer_id)  # noqa: S608
        if row is None:
            raise _not_found()
        if row["blocked_at"] is not None:
            row = tx.one(
                "UPDATE customers SET blocked_at = NULL, blocked_by = NULL, updated_at = :now"  # noqa: S608
                f" WHERE id = CAST(:id AS uuid) RETURNING {COLUMNS}",
                now=now,
                id=customer_id,
            )
            assert row is not None
            audit.record(tx, actor, "customer.unblock", "customer", customer_id, now)
        tx.commit()
    return to_json(row)
