"""Helpers for the chat tests: an active session between a new customer and a new mitra, chat calls."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared import notify
from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_token


@dataclass
class Pair:
    """An active session and both parties' Authorization headers."""

    session_id: str
    customer_id: str
    customer: dict[str, str]
    mitra_id: str
    mitra: dict[str, str]

    def auth(self, side: str) -> dict[str, str]:
        return self.customer if side == "client" else self.mitra


def active_session(ctx: AppContext, customer_name: str | None = None) -> Pair:
    """request -> accept -> payment-confirmed through the real entry points."""
    [(mitra_id, mitra_auth)] = online_mitras(ctx, 1)
    customer_id, customer_auth = customer(ctx)
    if customer_name is not None:
        with ctx.db.transaction() as tx:
            tx.execute(
                "UPDATE customers SET display_name = :n, phone_e164 = :p, email = :e WHERE id = CAST(:c AS uuid)",
                n=customer_name,
                p=f"+62812{uuid.uuid4().int % 10**8:08d}",
                e=f"{uuid.uuid4().hex[:8]}@mail.test",
                c=customer_id,
            )
            tx.commit()
    session = api("request", customer_auth).json
    assert api("accept", mitra_auth, session["id"]).status_code == 200
    assert api("pay", bearer(cc_token(ctx)), session["id"]).status_code == 200
    # The setup's pushes are delivered before the caller registers devices or reads pushes: a
    # queued push looks its devices up when a worker sends it (shared.notify).
    assert notify.drain(ctx)
    return Pair(session["id"], customer_id, customer_auth, mitra_id, mitra_auth)


def send(side: str, headers: dict[str, str], session_id: str, body: str, cmid: str | None = None) -> Any:
    """POST a message as `side` (client | mitra) through its entry point."""
    return client(f"chat_{side}_send").post(
        f"/api/{side}/chat-sessions/{session_id}/messages",
        headers=headers,
        json={"client_message_id": cmid or str(uuid.uuid4()), "body": body},
    )


def receive(side: str, headers: dict[str, str], session_id: str, **query: Any) -> Any:
    """GET messages as `side` through its entry point."""
    return client(f"chat_{side}_messages").get(
        f"/api/{side}/chat-sessions/{session_id}/messages", headers=headers, query_string=query
    )


def mark_read(side: str, headers: dict[str, str], session_id: str, up_to: Any) -> Any:
    return client(f"chat_{side}_read").post(
        f"/api/{side}/chat-sessions/{session_id}/messages/read", headers=headers, json={"up_to": up_to}
    )


def sessions(side: str, headers: dict[str, str], **query: Any) -> Any:
    return client(f"chat_{side}_sessions").get(f"/api/{side}/chat-sessions", headers=headers, query_string=query)
