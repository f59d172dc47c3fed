"""What several benchmarks share: a median timer, and a context on embedded servers of its own."""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra import embedded, migrate
from shared.config import Settings
from shared.context import AppContext


def median_ms(fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> float:
    """Median wall time of `repeat` calls of `fn` in ms (`before` runs untimed before each)."""
    times = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@contextmanager
def own_servers(prefix: str) -> Iterator[AppContext]:
    """A migrated context on an embedded Postgres and Valkey of its own, stopped and removed after
    (benchmarks that truncate tables never touch a shared server)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    pg = embedded.EmbeddedPostgres(root / "postgres").start()
    vk = embedded.EmbeddedValkey(root / "valkey").start()
    try:
        settings = dataclasses.replace(
            Settings.from_env(),
            database_url=pg.url,
            valkey_url=vk.url,
            valkey_prefix="bench:",
            valkey_timeout_seconds=30.0,
        )
        ctx = AppContext(settings)
        migrate.migrate(ctx.db)
        try:
            yield ctx
        finally:
            ctx.close()
    finally:
        vk.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
