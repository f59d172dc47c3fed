"""Overlap a producer with its consumer: the next item is fetched in a worker thread while the
caller works on the current one (both wait on sockets: Valkey, Postgres)."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

T = TypeVar("T")


def prefetched(items: Iterator[T]) -> Generator[T, None, None]:
    """Yield what `items` yields, fetching the next item in a worker thread while the caller
    works on the current one. An exception of `items` is raised here, at the item it would
    have produced. Closing the generator waits for the fetch under way, so `items` is never
    used after its owner (a transaction, a connection) has been released."""

    def fetch() -> tuple[bool, T | None]:
        try:
            return True, next(items)
        except StopIteration:
            return False, None

    with ThreadPoolExecutor(max_workers=1) as worker:
        upcoming = worker.submit(fetch)
        while True:
            more, item = upcoming.result()
            if not more:
                return
            upcoming = worker.submit(fetch)
            yield cast(T, item)
