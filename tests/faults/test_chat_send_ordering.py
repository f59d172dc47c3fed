"""Done-when 6 of the chat: 50 concurrent sends in one session, read while they commit.

Ids are allocated at INSERT and become visible at COMMIT; if two sends of one session could
commit out of id order, a reader paging with `after` would step past an id that commits a
moment later and never see it. The session row lock taken by every send makes id order and
commit order the same (docs/chat.md); this test reads concurrently with the sends and checks
that what the reader collected is exactly every message, in id order, once.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from shared.context import AppContext
from tests.support.chat_support import active_session, receive, send

SENDS = 50


def test_fifty_concurrent_sends_keep_strict_id_order_with_no_duplicates_or_gaps_for_a_reader(
    isolated_ctx: AppContext,
) -> None:
    pair = active_session(isolated_ctx)
    start = receive("client", pair.customer, pair.session_id).json["next_after"]
    plan = [("client" if i % 2 else "mitra", str(uuid.uuid4()), f"message {i}") for i in range(SENDS)]
    # Every message is also retried concurrently with itself: retries must not duplicate it.
    attempts = plan + plan
    done = threading.Event()
    seen: list[int] = []

    def read_while_sending() -> None:
        after = start
        while True:
            finished = done.is_set()
            page = receive("mitra", pair.mitra, pair.session_id, after=after, limit=7).json
            seen.extend(m["id"] for m in page["messages"])
            after = page["next_after"]
            if finished and not page["messages"]:
                return

    reader = threading.Thread(target=read_while_sending)
    reader.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda a: send(a[0], pair.auth(a[0]), pair.session_id, a[2], a[1]), attempts))
    done.set()
    reader.join(timeout=60)

    assert sorted(r.status_code for r in results) == [200] * SENDS + [201] * SENDS
    by_cmid: dict[str, set[int]] = {}
    for r in results:
        by_cmid.setdefault(r.json["client_message_id"], set()).add(r.json["id"])
    assert all(len(ids) == 1 for ids in by_cmid.values()) and len(by_cmid) == SENDS

    stored = [
        m["id"] for m in receive("client", pair.customer, pair.session_id, after=start, limit=100).json["messages"]
    ]
    assert len(stored) == SENDS and stored == sorted(set(stored))
    assert seen == stored  # the concurrent reader skipped nothing, saw nothing twice, in id order
    assert {i for ids in by_cmid.values() for i in ids} == set(stored)
