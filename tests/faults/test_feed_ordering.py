"""Many transactions write one mitra's feed at once; a reader paging with `after` meanwhile
must see every event once, in id order (docs/events.md, "Ordering").

Sends in different sessions hold different session locks, so without the per-user advisory
lock their `message` events could commit out of id order and a reader would step past one.
Through HTTP the window is small and this catches a missing lock only now and then;
tests/integration/test_feed_ordering_lock.py holds a writer before its COMMIT and shows it
every time. This one checks the real flow: many writers, a reader, nothing lost or repeated.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from shared.context import AppContext
from tests.support.auth_support import client
from tests.support.chat_support import send
from tests.support.pairing_support import api, customer, online_mitras
from tests.support.tokens import bearer, cc_token

SESSIONS = 8
SENDS_PER_SESSION = 20


def _feed(headers: dict[str, str], **query: object) -> dict:
    resp = client("chat_mitra_events").get("/api/mitra/events", headers=headers, query_string=query)
    assert resp.status_code == 200, resp.json
    return dict(resp.json)


def test_concurrent_writers_of_one_feed_never_make_a_reader_skip_or_repeat_an_event(isolated_ctx: AppContext) -> None:
    [(_, mitra)] = online_mitras(isolated_ctx, 1, max_sessions=SESSIONS)
    staff = bearer(cc_token(isolated_ctx))
    chats = []
    for _ in range(SESSIONS):
        _, cust = customer(isolated_ctx)
        session = api("request", cust).json
        assert api("accept", mitra, session["id"]).status_code == 200
        assert api("pay", staff, session["id"]).status_code == 200
        chats.append((session["id"], cust))
    start = _feed(mitra)["next_after"]
    done = threading.Event()
    seen: list[int] = []

    def read_while_sending() -> None:
        after = start
        while True:
            finished = done.is_set()
            page = _feed(mitra, after=after, limit=5)
            seen.extend(e["id"] for e in page["events"])
            after = page["next_after"]
            if finished and not page["events"]:
                return

    reader = threading.Thread(target=read_while_sending)
    reader.start()
    plan = [(session_id, cust, f"m{i}") for i in range(SENDS_PER_SESSION) for session_id, cust in chats]
    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda p: send("client", p[1], p[0], p[2]).status_code, plan))
    done.set()
    reader.join(timeout=60)

    assert codes == [201] * len(plan)
    stored: list[int] = []
    after = start
    while page := _feed(mitra, after=after, limit=100)["events"]:
        stored.extend(e["id"] for e in page)
        after = page[-1]["id"]
    assert len(stored) == len(plan)
    assert seen == stored  # nothing skipped, nothing twice, in id order
