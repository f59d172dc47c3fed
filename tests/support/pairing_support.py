"""Helpers for the pairing tests: customers and mitras with tokens, online mitras, HTTP calls."""

from __future__ import annotations

from typing import Any

from shared import availability
from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.mirror_state import new_mitra
from tests.support.tokens import _token, bearer, mitra_token


def customer(ctx: AppContext) -> tuple[str, dict[str, str]]:
    """(customer id, Authorization header) of a new anonymous customer."""
    with ctx.db.transaction() as tx:
        customer_id = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('c') RETURNING id"))
        tx.commit()
    return customer_id, bearer(_token(ctx, "customer", customer_id)[0])


def online_mitras(ctx: AppContext, n: int, max_sessions: int | None = None) -> list[tuple[str, dict[str, str]]]:
    """n new online mitras (mirror seeded) with their Authorization headers."""
    out = []
    for _ in range(n):
        mitra_id = new_mitra(ctx, max_sessions)
        availability.set_online(ctx, mitra_id, "test")
        out.append((mitra_id, bearer(mitra_token(ctx, mitra_id)[0])))
    availability.seed_from_postgres(ctx)
    return out


def used(ctx: AppContext, mitra_id: str) -> tuple[int, int]:
    """(used capacity in Postgres, used capacity in the mirror)."""
    in_pg = ctx.db.scalar(
        "SELECT count(*) FROM chat_sessions"
        " WHERE mitra_id = CAST(:m AS uuid) AND status IN ('active', 'pending_payment')",
        m=mitra_id,
    )
    return int(in_pg), int(ctx.valkey.hget(ctx.keys.used, mitra_id) or 0)


_ROUTES = {
    "request": ("pairing_request", "/api/client/chat-sessions"),
    "get": ("pairing_get", "/api/client/chat-sessions/{id}"),
    "cancel": ("pairing_cancel", "/api/client/chat-sessions/{id}/cancel"),
    "extend": ("pairing_extend", "/api/client/chat-sessions/{id}/extend"),
    "end": ("pairing_end", "/api/client/chat-sessions/{id}/end"),
    "reroute": ("pairing_reroute", "/api/client/chat-sessions/{id}/reroute"),
    "accept": ("pairing_mitra_accept", "/api/mitra/chat-sessions/{id}/accept"),
    "decline": ("pairing_mitra_decline", "/api/mitra/chat-sessions/{id}/decline"),
    "mitra_end": ("pairing_mitra_end", "/api/mitra/chat-sessions/{id}/end"),
    "pay": ("payment_confirmed", "/internal/chat-sessions/{id}/payment-confirmed"),
}


def api(action: str, headers: dict[str, str], session_id: str = "", json: Any = None, app: Any = None) -> Any:
    """Call one pairing route through its real entry point."""
    entry, path = _ROUTES[action]
    app = app or client(entry)
    url = path.format(id=session_id)
    if action == "get":
        return app.get(url, headers=headers)
    return app.post(url, headers=headers, json=json)


def events(ctx: AppContext, session_id: str) -> list[str]:
    """Event types of a session, oldest first."""
    rows = ctx.db.rows(
        "SELECT type FROM chat_session_events WHERE session_id = CAST(:s AS uuid) ORDER BY at, id", s=session_id
    )
    return [r["type"] for r in rows]
