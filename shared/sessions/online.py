"""A mitra going online is offered the searches already running (docs/pairing.md, "Late online").

A blast picks among the mitras available when it runs, so one who comes online a moment later
would never see a search already running. Here, right after the mitra is online
(shared.availability), it is offered up to PAIRING_BLAST_SIZE searches still within their
pairing deadline that it was never offered and is not excluded from, oldest first, when it has
room. Each offer expires with its search. The session rows are locked with SKIP LOCKED (a row a
transition holds is left alone: that search is being taken or closed). The offers reach the
mitra through its feed and its offers list (it is in the app right now); no push is sent, so
the heartbeat group that serves the route stays free of the push stack.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import availability
from shared.context import AppContext
from shared.sessions import store


def go_online(ctx: AppContext, mitra_id: str, actor: str) -> dict[str, Any]:
    """Go online, then be offered the running searches; the status, as availability.set_online answers it."""
    status = availability.set_online(ctx, mitra_id, actor)
    if status["used"] < status["max"]:
        offer_running_searches(ctx, mitra_id)
    return status


def offer_running_searches(ctx: AppContext, mitra_id: str) -> list[str]:
    """Offer this mitra the running searches it was never offered; the session ids offered."""
    now = ctx.now()
    started_after = now - timedelta(seconds=ctx.settings.pairing_timeout_seconds)
    with ctx.db.transaction() as tx:
        running = store.running_searches_for(tx, mitra_id, started_after, ctx.settings.pairing_blast_size)
        for row in running:
            session_id = str(row["id"])
            store.insert_offers(tx, session_id, [mitra_id], now, row["search_started_at"])
            store.record_event(tx, session_id, "offered", "system", now, {"mitras": 1, "reason": "mitra_online"})
        tx.commit()
    return [str(row["id"]) for row in running]
