"""Two sends with one client_message_id at the same instant (an app retrying over a second
connection): one message, and both answers name it; never a 5xx from the unique index."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from shared.context import AppContext
from tests.support.apps import client
from tests.support.chat_support import active_session, send

ROUNDS = 8  # the race is lost in some rounds either way; each round is a fresh id


def _at_once(n: int, call: Any) -> list[Any]:
    barrier = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_one_id_sent_twice_at_once_stores_one_message_and_answers_it_to_both(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    client("chat_client_send")  # built before the threads share it
    for _ in range(ROUNDS):
        cmid = str(uuid.uuid4())
        answers = _at_once(2, lambda cmid=cmid: send("client", pair.customer, pair.session_id, "hello", cmid))
        assert sorted(a.status_code for a in answers) == [200, 201], [(a.status_code, a.json) for a in answers]
        assert answers[0].json["id"] == answers[1].json["id"]
        stored = isolated_ctx.db.scalar(
            "SELECT count(*) FROM chat_messages WHERE session_id = CAST(:s AS uuid) AND client_message_id = :c",
            s=pair.session_id,
            c=cmid,
        )
        assert stored == 1
