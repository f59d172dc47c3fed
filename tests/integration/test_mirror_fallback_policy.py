"""One fallback policy for every mirror read (shared.availability.api._mirror_or_postgres):
an unseeded mirror is answered from Postgres and asked to seed, whatever the read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared import availability
from shared.context import AppContext
from tests.support.mirror_state import new_mitra, open_session

READS: dict[str, Callable[[AppContext, str], Any]] = {
    "mitra_status": lambda ctx, m: availability.mitra_status(ctx, m),
    "mitra_with_live": lambda ctx, m: availability.mitra_with_live(ctx, m)["live"],
    "list_mitras": lambda ctx, m: availability.list_mitras(ctx, 10, None)["mitras"][0]["live"],
    "is_mitra_reachable": lambda ctx, m: availability.is_mitra_reachable(ctx, m),
    "count_available": lambda ctx, m: availability.count_available(ctx)["available"],
    "dashboard_counts": lambda ctx, m: availability.dashboard_counts(ctx)["available"],
    "find_available_mitras": lambda ctx, m: availability.find_available_mitras(ctx, 5),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_a_read_of_an_unseeded_mirror_answers_from_postgres_and_seeds_it(isolated_ctx: AppContext, read: str) -> None:
    ctx = isolated_ctx
    m = new_mitra(ctx, max_sessions=2)
    availability.set_online(ctx, m, "test")
    open_session(ctx, m)
    availability.recompute_capacity(ctx, m)
    availability.ensure_seeded(ctx)
    from_mirror = READS[read](ctx, m)

    ctx.valkey.flushall()
    from_postgres = READS[read](ctx, m)

    assert from_postgres == from_mirror
    assert availability.is_seeded(ctx)
