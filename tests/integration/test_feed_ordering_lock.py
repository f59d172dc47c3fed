"""Within one user's feed, id order is commit order (docs/events.md, "Ordering"), shown deterministically.

A first writer inserts its event and is held right before its COMMIT (a before-commit hook
registered after the feed's); a second writer of the same user then tries to write. With the
per-user advisory lock the second waits for the first, so a reader in between sees neither and
later sees both; without it the second commits a higher id first, the reader steps past it, and
the first's lower id is never read.
"""

from __future__ import annotations

import threading
import uuid

from shared import feed
from shared.context import AppContext


def _page(ctx: AppContext, user_id: str, after: int) -> list[int]:
    with ctx.db.transaction() as tx:
        return [e["id"] for e in feed.read(tx, "mitra", user_id, after, 100)["events"]]


def test_a_second_writer_of_one_user_waits_for_the_first_so_a_reader_never_skips(isolated_ctx: AppContext) -> None:
    user_id = str(uuid.uuid4())
    now = isolated_ctx.now()
    release = threading.Event()
    inserted = threading.Event()

    def first_writer() -> None:
        with isolated_ctx.db.transaction() as tx:
            feed.add(tx, "mitra", user_id, feed.MESSAGE, now, message_id=1)

            def hold(_: object) -> None:  # runs after the feed's INSERT, before COMMIT
                inserted.set()
                release.wait(10)

            tx.before_commit("hold", hold)
            tx.commit()

    def second_writer() -> None:
        with isolated_ctx.db.transaction() as tx:
            feed.add(tx, "mitra", user_id, feed.MESSAGE, now, message_id=2)
            tx.commit()

    first = threading.Thread(target=first_writer)
    first.start()
    assert inserted.wait(10)
    second = threading.Thread(target=second_writer)
    second.start()
    second.join(timeout=1.0)  # with the lock it waits for the first; without it, it is done

    seen = _page(isolated_ctx, user_id, 0)
    after = seen[-1] if seen else 0
    release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    seen += _page(isolated_ctx, user_id, after)

    assert seen == _page(isolated_ctx, user_id, 0)  # every event once, in id order
    assert len(seen) == 2
