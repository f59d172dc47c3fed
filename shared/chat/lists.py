"""The apps' session lists (docs/chat.md): what a restarted app needs to rebuild its state.

Mitra:    offers (searching sessions offered to it and not answered, before their pairing
          deadline), current (its pending_payment and active sessions), history (sessions it
          held that are over).
Customer: open (its searching/pending_payment/active session), history (the ones that are over).

Pages are newest first, by keyset: the opaque cursor encodes the (sort time, id) of the last
row of the previous page, so a page never repeats or skips rows when new sessions arrive.
Every customer a mitra sees here goes through `anonymity.customer_for_mitra`, and every end
reason through `states.end_reason_for_mitra` (a staff block reads `closed_by_support`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import anonymity, paging
from shared.auth.principal import Principal
from shared.context import AppContext
from shared.db import Row
from shared.errors import NotFound
from shared.sessions import settle, store
from shared.sessions.states import (
    CAPACITY_STATUSES,
    FINAL_STATUSES,
    OPEN_STATUSES,
    end_reason_for_mitra,
    status_in_sql,
)

MITRA_VIEWS = ("offers", "current", "history")
CUSTOMER_VIEWS = ("open", "history")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

_S_COLUMNS = ", ".join(f"s.{c.strip()}" for c in store.SESSION_COLUMNS.split(","))
_EXTRA = (
    " (SELECT count(*) FROM pairing_offers x WHERE x.session_id = s.id) AS offered_count,"
    " (SELECT COALESCE(max(m.id), 0) FROM chat_messages m WHERE m.session_id = s.id) AS last_message_id,"
    " c.display_name AS customer_name, mi.display_name AS mitra_name"
)
_FROM = " FROM chat_sessions s JOIN customers c ON c.id = s.customer_id LEFT JOIN mitras mi ON mi.id = s.mitra_id"
_PAGE = (
    " AND (CAST(:after_at AS timestamptz) IS NULL"
    "      OR ({sort}, s.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid)))"
)
_ORDER = " ORDER BY {sort} DESC, s.id DESC LIMIT :n"

_MINE = " WHERE s.mitra_id = CAST(:me AS uuid)"
_OWN = " WHERE s.customer_id = CAST(:me AS uuid)"
_OPEN = " AND " + status_in_sql("s.status", OPEN_STATUSES)
_HELD = " AND " + status_in_sql("s.status", CAPACITY_STATUSES)
_OVER = " AND " + status_in_sql("s.status", FINAL_STATUSES)

# view -> (extra FROM, WHERE, sort column); :me is the caller, :cutoff the oldest live offer.
_MITRA_SQL = {
    "offers": (
        " JOIN pairing_offers o ON o.session_id = s.id AND o.mitra_id = CAST(:me AS uuid)",
        " WHERE o.response IS NULL AND s.status = 'searching' AND s.search_started_at > :cutoff",
        "o.offered_at",
    ),
    "current": ("", _MINE + _HELD, "s.requested_at"),
    "history": ("", _MINE + _OVER, "s.requested_at"),
}
_CUSTOMER_SQL = {
    "open": ("", _OWN + _OPEN, "s.requested_at"),
    "history": ("", _OWN + _OVER, "s.requested_at"),
}


def _page(
    ctx: AppContext, name: str, sql: tuple[str, str, str], me: str, cursor: str | None, limit: int
) -> tuple[list[Row], str | None]:
    joins, where, sort = sql
    kind = f"sessions-{name}"
    statement = (
        f"SELECT {_S_COLUMNS}, {sort} AS sort_at, {_EXTRA}{_FROM}{joins}{where}"
        + _PAGE.format(sort=sort)
        + _ORDER.format(sort=sort)
    )
    cutoff = ctx.now() - timedelta(seconds=ctx.settings.pairing_timeout_seconds)
    params: dict[str, Any] = {"me": me, "n": limit + 1, **paging.after(kind, cursor)}
    if ":cutoff" in where:
        params["cutoff"] = cutoff
    rows = ctx.db.rows(statement, **params)
    if settle.settle(ctx, rows):  # exact deadlines (docs/control-center.md): list nobody past theirs as live
        rows = ctx.db.rows(statement, **params)
    page = paging.page(kind, rows, limit, lambda row: (row["sort_at"], row["id"]))
    return page.rows, page.next_cursor


def mitra_sessions(ctx: AppContext, principal: Principal, view: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """One page of the mitra's offers, current or past sessions, newest first."""
    rows, next_cursor = _page(ctx, f"mitra-{view}", _MITRA_SQL[view], principal.user_id, cursor, limit)
    sees_name = anonymity.mitra_sees_name(ctx)
    items = [_mitra_item(ctx, row, sees_name, offer=view == "offers") for row in rows]
    return {"view": view, "sessions": items, "next_cursor": next_cursor}


_ONE_FOR_MITRA = (
    f"SELECT {_S_COLUMNS}, o.offered_at AS sort_at, {_EXTRA}{_FROM}"
    " LEFT JOIN pairing_offers o ON o.session_id = s.id AND o.mitra_id = CAST(:me AS uuid)"
    " WHERE s.id = CAST(:id AS uuid)"
    "   AND (s.mitra_id = CAST(:me AS uuid) OR (s.status = 'searching' AND o.response IS NULL))"
)


def mitra_session(ctx: AppContext, principal: Principal, session_id: str) -> dict[str, Any]:
    """One session as the mitra sees it: one it holds (or held), or an open offer to it.

    The rules of its other session routes: the mitra holding the session reads it, also after
    its end; a mitra with an unanswered offer reads the offer while it is searching; anybody
    else (a mitra that lost, declined or was rerouted away, a stranger) gets 404
    SESSION_NOT_FOUND, like an unknown id. Settled first, so never shown live past a deadline.
    """
    params = {"me": principal.user_id, "id": session_id}
    row = ctx.db.one(_ONE_FOR_MITRA, **params)
    if row is not None and settle.settle(ctx, [row]):
        row = ctx.db.one(_ONE_FOR_MITRA, **params)
    if row is None:
        raise NotFound("chat session not found", code="SESSION_NOT_FOUND")
    return _mitra_item(ctx, row, anonymity.mitra_sees_name(ctx), offer=str(row["mitra_id"]) != principal.user_id)


def _mitra_item(ctx: AppContext, row: Row, sees_name: bool, *, offer: bool) -> dict[str, Any]:
    item = _common(row)
    item["customer"] = anonymity.customer_for_mitra(row["customer_id"], row["customer_name"], sees_name)
    item["end_reason"] = end_reason_for_mitra(item["end_reason"])
    if offer:
        deadline = row["search_started_at"] + timedelta(seconds=ctx.settings.pairing_timeout_seconds)
        item["offered_at"] = row["sort_at"].isoformat()
        item["offer_expires_at"] = deadline.isoformat()
    return item


def customer_sessions(
    ctx: AppContext, principal: Principal, view: str, cursor: str | None, limit: int
) -> dict[str, Any]:
    """One page of the customer's open or past sessions, newest first."""
    rows, next_cursor = _page(ctx, f"customer-{view}", _CUSTOMER_SQL[view], principal.user_id, cursor, limit)
    items = []
    for row in rows:
        item = _common(row)
        item["mitra"] = {"id": str(row["mitra_id"]), "display_name": row["mitra_name"]} if row["mitra_id"] else None
        items.append(item)
    return {"view": view, "sessions": items, "next_cursor": next_cursor}


def _common(row: Row) -> dict[str, Any]:
    item = store.to_json(row, int(row["offered_count"]))
    item["last_message_id"] = int(row["last_message_id"])
    return item
