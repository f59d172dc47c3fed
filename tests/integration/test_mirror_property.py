"""Mirror equals truth: random sequences of status, capacity, config, heartbeat and FLUSHALL
steps; after every step Valkey's sets, hashes and available index equal what Postgres implies
(after a FLUSHALL: once the next read has reseeded)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.embedded import EmbeddedValkey
from shared import availability
from shared.auth.principal import Principal
from shared.availability import truth
from shared.context import AppContext
from shared.errors import ApiError
from tests.support import apps, mirror_state
from tests.support.helpers import FakeClock

MITRAS = 4
idx = st.integers(0, MITRAS - 1)
steps = st.one_of(
    st.tuples(st.just("online"), idx),
    st.tuples(st.just("offline"), idx),
    st.tuples(st.just("deactivate"), idx),
    st.tuples(st.just("activate"), idx),
    st.tuples(st.just("open_session"), idx),
    st.tuples(st.just("close_session"), idx),
    st.tuples(st.just("set_max"), idx, st.one_of(st.none(), st.integers(0, 3))),
    st.tuples(st.just("set_default_max"), st.integers(0, 3)),
    st.tuples(st.just("heartbeat"), idx),
    st.tuples(st.just("auto_offline"), idx),
    st.tuples(st.just("advance"), st.integers(1, 120)),
    st.tuples(st.just("flushall")),
)


@pytest.fixture
def world(isolated_ctx: AppContext, own_valkey: EmbeddedValkey, clock: FakeClock) -> tuple[AppContext, FakeClock]:
    return apps.with_valkey(isolated_ctx, own_valkey.url), clock


def _reset(ctx: AppContext) -> list[str]:
    with ctx.db.transaction() as tx:
        tx.execute("TRUNCATE mitras, chat_sessions, customers, mitra_status_logs, auth_sessions CASCADE")
        tx.execute("DELETE FROM app_config WHERE key = 'mitra_max_concurrent_sessions'")
        tx.commit()
    ctx.valkey.flushall()
    return [mirror_state.new_mitra(ctx) for _ in range(MITRAS)]


def _apply(ctx: AppContext, clock: FakeClock, ids: list[str], sessions: dict[str, list[str]], step: tuple) -> None:
    op = step[0]
    m = ids[step[1]] if len(step) > 1 and op not in ("set_default_max", "advance") else None
    try:
        if op == "online":
            availability.set_online(ctx, m, "prop")
        elif op == "offline":
            availability.set_offline(ctx, m, "prop")
        elif op == "deactivate":
            availability.deactivate(ctx, m, "prop")
        elif op == "activate":
            availability.activate(ctx, m, "prop")
        elif op == "open_session":
            sessions[m].append(mirror_state.open_session(ctx, m, "pending_payment"))
            availability.recompute_capacity(ctx, m)
        elif op == "close_session" and sessions[m]:
            mirror_state.close_session(ctx, sessions[m].pop())
            availability.recompute_capacity(ctx, m)
        elif op == "set_max":
            availability.edit_mitra(ctx, m, {"max_concurrent_sessions": step[2]}, "prop")
        elif op == "set_default_max":
            availability.set_app_config(ctx, "mitra_max_concurrent_sessions", step[1], "prop")
        elif op == "heartbeat":
            availability.heartbeat(ctx, Principal("mitra", m, str(uuid.uuid4())))
        elif op == "auto_offline":  # what the sweep does: Postgres first, then one mirror script
            with ctx.db.transaction() as tx:
                tx.execute("UPDATE mitras SET is_online = false WHERE id = CAST(:m AS uuid)", m=m)
                tx.commit()
            availability.remove_offlined(ctx, m)
        elif op == "advance":
            clock.advance(step[1])
        elif op == "flushall":
            ctx.valkey.flushall()
    except ApiError:
        pass  # e.g. online while deactivated (403): Postgres unchanged, the mirror must still agree


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(steps, min_size=1, max_size=25))
def test_mirror_equals_postgres_after_every_step(world: tuple[AppContext, FakeClock], sequence: list[tuple]) -> None:
    _check_sequence(*world, sequence)


@pytest.mark.cluster
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(steps, min_size=1, max_size=20))
def test_mirror_equals_postgres_after_every_step_on_a_cluster(
    cluster_ctx: AppContext, clock: FakeClock, sequence: list[tuple]
) -> None:
    _check_sequence(cluster_ctx, clock, sequence)


def _check_sequence(ctx: AppContext, clock: FakeClock, sequence: list[tuple]) -> None:
    ids = _reset(ctx)
    availability.ensure_seeded(ctx)
    sessions: dict[str, list[str]] = {m: [] for m in ids}
    for step in sequence:
        _apply(ctx, clock, ids, sessions, step)
        if not ctx.valkey.exists(ctx.keys.seeded):
            availability.count_available(ctx)  # the next read reseeds
        assert mirror_state.actual(ctx) == mirror_state.expected(ctx), step
        assert mirror_state.scores_consistent(ctx)
        # The answers agree with Postgres too.
        assert availability.dashboard_counts(ctx)["source"] == "mirror"
        with ctx.db.transaction() as tx:
            pg = truth.dashboard_counts(tx, truth.cutoff_for(ctx.now(), ctx.settings.mitra_heartbeat_stale_seconds))
        mirror_counts = availability.dashboard_counts(ctx)
        assert (mirror_counts["online"], mirror_counts["deactivated"]) == (pg["online"], pg["deactivated"])
