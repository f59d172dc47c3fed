"""The reusable invariant checks (tests/support/invariants.py) hold on a consistent system and name
each breach on a broken one."""

from __future__ import annotations

from shared import availability
from shared.context import AppContext
from tests.support import invariants
from tests.support.mirror_state import new_mitra, open_session


def test_a_consistent_system_has_no_violations_and_each_breach_is_named(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    busy, idle = new_mitra(ctx), new_mitra(ctx)
    for mid in (busy, idle):
        availability.set_online(ctx, mid, "test")
    open_session(ctx, busy)
    availability.recompute_capacity(ctx, busy)
    assert invariants.violations(ctx) == []

    ctx.valkey.hset(ctx.keys.used, idle, 1)  # the mirror drifts
    open_session(ctx, busy, "pending_payment")  # two open sessions, max 1; the mirror not told
    found = "\n".join(invariants.violations(ctx))
    assert f"mitra {busy}: 2 open sessions above its max 1" in found
    assert f"mitra {busy}: mirror used 1 != open sessions 2" in found
    assert f"mitra {idle}: mirror used 1 without an open session" in found
    assert "mirror used:" in found
