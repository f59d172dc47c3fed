"""Small test helpers shared by every test package."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from shared import context
from shared.context import AppContext


class FakeClock:
    """An injectable clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


@contextlib.contextmanager
def installed(app_ctx: AppContext) -> Iterator[AppContext]:
    """Make `app_ctx` the process-wide context for the block; uninstall and close it after."""
    context.install(app_ctx)
    try:
        yield app_ctx
    finally:
        context.install(None)
        app_ctx.close()


# Run a test once on the single Valkey and once on the local 3-shard cluster: the test takes
# `mirror_ctx` (directly, or through a fixture that does), and this picks its topology.
on_both_topologies = pytest.mark.parametrize(
    "mirror_ctx", ["single", pytest.param("cluster", marks=pytest.mark.cluster)], indirect=True
)
