"""A customer signing in while staff block them: the block wins either way. Either the sign-in
sees the block and is refused, or the session it creates is revoked by the block; a blocked
customer never keeps a live session (the sign-in reads the customer FOR UPDATE)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pg8000.native

from shared.auth import customers
from shared.auth.identity import Identity
from shared.cc import customer_admin as cc_customers
from shared.context import AppContext
from shared.db import parse_database_url
from shared.errors import ApiError

# Lock waits of this database's backends. By backend, not by pg_locks.database: a wait for a
# row another transaction holds is a wait on its transaction id, a lock with no database.
_WAITING = (
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE NOT l.granted AND a.datname = current_database()"
)


def _wait_for(conn: pg8000.native.Connection, waiting: int, *, unless: threading.Thread | None = None) -> None:
    deadline = time.monotonic() + 10
    while conn.run(_WAITING)[0][0] < waiting:
        if (unless is not None and not unless.is_alive()) or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _in_thread(fn: Any, out: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            out[name] = fn()
        except ApiError as exc:
            out[name] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_sign_in_held_up_while_staff_block_the_customer_leaves_no_live_session(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    # No email and no name: a sign-in that brings either also UPDATEs the customer row, which
    # locks it whatever the read did; without them only the read's FOR UPDATE serializes it with
    # the block, which is what this test is about.
    identity = Identity("google", f"sub-{uuid.uuid4().hex}", None)
    first = customers.sign_in_with_identity(ctx, identity, None, None)
    customer_id = first["user"]["id"]
    p = parse_database_url(ctx.settings.database_url or "")
    holder = pg8000.native.Connection(p.user, host=p.host or "127.0.0.1", port=p.port, database=p.database)
    out: dict[str, Any] = {}
    try:
        # Hold the sign-in between its read of the customer and its commit: it waits to write
        # its refresh token, which the block never touches.
        holder.run("BEGIN")
        holder.run("LOCK TABLE refresh_tokens IN SHARE MODE")
        sign_in = _in_thread(lambda: customers.sign_in_with_identity(ctx, identity, None, None), out, "sign_in")
        _wait_for(holder, 1)
        block = _in_thread(lambda: cc_customers.block(ctx, customer_id, "cc:test", "race"), out, "block")
        _wait_for(holder, 2, unless=block)  # blocked behind the sign-in's row lock, or done
        holder.run("ROLLBACK")
        sign_in.join(20)
        block.join(20)
    finally:
        holder.close()
    assert not isinstance(out["block"], ApiError), out["block"]
    live = ctx.db.scalar(
        "SELECT count(*) FROM auth_sessions WHERE user_type = 'customer' AND user_id = CAST(:c AS uuid)"
        " AND revoked_at IS NULL",
        c=customer_id,
    )
    assert live == 0, out["sign_in"]
