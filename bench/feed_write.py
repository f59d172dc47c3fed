"""What the event feed adds to the writes that report to it, side by side in one run.

(a) a chat send (shared.chat.service.send: rate limit, lock, insert, commit, wake, push queue)
    with its `message` event, and with the feed turned off (feed.add a no-op);
(b) a blast of PAIRING_BLAST_SIZE offers in one transaction (sessions.store.insert_offers) with
    its `offer_new` events (one INSERT, one advisory lock per mitra), and without.

Prints the medians and the ratio with/without (the two alternate, call by call, so load on a
shared machine hits both alike). Runs on embedded servers of its own.

    .venv/bin/python -m bench.feed_write [--repeat 200]
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import median_ms, own_servers
from shared import context, feed
from shared.auth.principal import Principal
from shared.chat import service
from shared.context import AppContext
from shared.sessions import store


@contextmanager
def _feed_off() -> Iterator[None]:
    real = feed.add

    def off(*_: Any, **__: Any) -> None:
        return None

    feed.add = off  # type: ignore[assignment]
    try:
        yield
    finally:
        feed.add = real  # type: ignore[assignment]


def _setup(ctx: AppContext, mitras: int) -> tuple[str, str, list[str]]:
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE app_config SET value = '1000000' WHERE key = 'chat_max_messages_per_minute'")
        customer = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('c') RETURNING id"))
        ids = [
            str(
                tx.scalar(
                    "INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'm') RETURNING id", p=f"+62811{i:07d}"
                )
            )
            for i in range(mitras)
        ]
        session = str(
            tx.scalar(
                "INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes, started_at, expires_at)"
                " VALUES (CAST(:c AS uuid), CAST(:m AS uuid), 'active', 60, now(), now() + interval '1 day')"
                " RETURNING id",
                c=customer,
                m=ids[0],
            )
        )
        tx.commit()
    return customer, session, ids


def _blast(ctx: AppContext, customer: str, mitras: list[str]) -> None:
    now = ctx.now()
    with ctx.db.transaction() as tx:
        session = str(
            tx.scalar(
                "INSERT INTO chat_sessions (customer_id, status, duration_minutes, search_started_at)"
                " VALUES (CAST(:c AS uuid), 'expired', 30, :now) RETURNING id",
                c=customer,
                now=now,
            )
        )
        store.insert_offers(tx, session, mitras, now)
        tx.commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    with own_servers("bench-feed-") as ctx:
        context.install(ctx)
        try:
            customer, session, mitras = _setup(ctx, ctx.settings.pairing_blast_size)
            principal = Principal(user_type="customer", user_id=customer, session_id=str(uuid.uuid4()))

            def send() -> None:
                service.send(ctx, principal, session, str(uuid.uuid4()), "hello")

            def blast() -> None:
                _blast(ctx, customer, mitras)

            results: dict[str, tuple[float, float]] = {}
            for name, fn in (("send", send), ("blast", blast)):
                fn()  # warm up once
                with_feed: list[float] = []
                without: list[float] = []
                for _ in range(args.repeat):  # alternated, so a busy moment hits both alike
                    with_feed.append(median_ms(fn, 1))
                    with _feed_off():
                        without.append(median_ms(fn, 1))
                results[name] = (statistics.median(with_feed), statistics.median(without))
        finally:
            context.install(None)
    print(f"{'write':<28}{'with feed ms':>14}{'without ms':>12}{'ratio':>8}")
    for name, (with_feed, without) in results.items():
        label = "chat send" if name == "send" else f"blast of {len(mitras)} offers"
        print(f"{label:<28}{with_feed:>14.2f}{without:>12.2f}{with_feed / without:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
