"""The availability mirror against real Postgres + Valkey: seed, write paths, reads, fallbacks."""

from __future__ import annotations

import time
import uuid
from typing import Any

from shared import availability
from shared.auth.principal import Principal
from shared.availability import mirror, seed
from shared.context import AppContext
from tests.support import mirror_state
from tests.support.helpers import FakeClock, on_both_topologies
from tests.support.mirror_state import new_mitra, open_session


@on_both_topologies
def test_seed_builds_the_mirror_postgres_implies(mirror_ctx: AppContext) -> None:
    ctx = mirror_ctx
    a, b, c = new_mitra(ctx), new_mitra(ctx, max_sessions=2), new_mitra(ctx)
    availability.set_online(ctx, a, "test")
    availability.set_online(ctx, b, "test")
    availability.deactivate(ctx, c, "test")
    open_session(ctx, b)
    ctx.valkey.flushall()

    report = availability.seed_from_postgres(ctx)

    assert report.ran and report.first_seed
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)
    assert mirror_state.actual(ctx)["available"] == {a, b}
    assert mirror_state.scores_consistent(ctx)


@on_both_topologies
def test_write_paths_keep_the_mirror_equal_to_postgres(mirror_ctx: AppContext) -> None:
    ctx = mirror_ctx
    availability.ensure_seeded(ctx)
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "test")
    assert m in mirror_state.actual(ctx)["available"]

    session = open_session(ctx, m)
    availability.recompute_capacity(ctx, m)
    state = mirror_state.actual(ctx)
    assert state["used"] == {m: 1} and m not in state["available"]

    mirror_state.close_session(ctx, session)
    availability.recompute_capacity(ctx, m)
    assert m in mirror_state.actual(ctx)["available"]

    availability.deactivate(ctx, m, "test")
    state = mirror_state.actual(ctx)
    assert m in state["deactivated"] and m not in state["online"] and m not in state["available"]
    availability.activate(ctx, m, "test")
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


def test_a_session_waiting_for_payment_holds_its_mitras_capacity_like_an_active_one(
    mirror_ctx: AppContext,
) -> None:
    ctx = mirror_ctx
    availability.ensure_seeded(ctx)
    waiting, active = new_mitra(ctx), new_mitra(ctx)
    for mitra_id, status in ((waiting, "pending_payment"), (active, "active")):
        availability.set_online(ctx, mitra_id, "test")
        open_session(ctx, mitra_id, status)
        availability.recompute_capacity(ctx, mitra_id)

    state = mirror_state.actual(ctx)
    assert state["used"] == {waiting: 1, active: 1}
    assert waiting not in state["available"] and active not in state["available"]
    ctx.valkey.flushall()
    availability.seed_from_postgres(ctx)
    assert mirror_state.actual(ctx)["used"] == {waiting: 1, active: 1}
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


@on_both_topologies
def test_reads_from_the_mirror_and_from_postgres_agree(mirror_ctx: AppContext, clock: FakeClock) -> None:
    ctx = mirror_ctx
    availability.ensure_seeded(ctx)
    ids = [new_mitra(ctx) for _ in range(5)]
    for m in ids[:4]:
        availability.set_online(ctx, m, "test")
    open_session(ctx, ids[0])
    availability.recompute_capacity(ctx, ids[0])

    mirror_answer = (
        availability.count_available(ctx)["available"],
        sorted(availability.find_available_mitras(ctx, 25, [ids[1]])),
        availability.is_mitra_reachable(ctx, ids[2]),
        {k: v for k, v in availability.dashboard_counts(ctx).items() if k != "source"},
    )
    ctx.valkey.delete(ctx.keys.seeded, ctx.keys.snapshot, ctx.keys.seed_lock)
    ctx.valkey.set(ctx.keys.seed_lock, "someone-else")  # another instance is seeding
    fallback_answer = (
        availability.count_available(ctx)["available"],
        sorted(availability.find_available_mitras(ctx, 25, [ids[1]])),
        availability.is_mitra_reachable(ctx, ids[2]),
        {k: v for k, v in availability.dashboard_counts(ctx).items() if k != "source"},
    )
    assert availability.dashboard_counts(ctx)["source"] == "postgres"
    assert (
        mirror_answer
        == fallback_answer
        == (
            3,
            sorted(ids[2:4]),
            True,
            {"online": 4, "available": 3, "deactivated": 0},
        )
    )


def test_stale_heartbeats_are_not_available(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "test")
    clock.advance(ctx.settings.mitra_heartbeat_stale_seconds)
    assert availability.find_available_mitras(ctx, 25) == []
    assert availability.is_mitra_reachable(ctx, m) is False
    scan = availability.stale_scan(ctx, availability.cutoff_ms(ctx))
    assert scan is not None and (scan.ids_csv, scan.count, scan.online) == (m, 1, 1)


@on_both_topologies
def test_heartbeat_refreshes_the_available_score(mirror_ctx: AppContext, clock: FakeClock) -> None:
    ctx = mirror_ctx
    availability.ensure_seeded(ctx)
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "test")
    clock.advance(60)
    status = availability.heartbeat(ctx, Principal("mitra", m, "00000000-0000-0000-0000-000000000000"))
    assert status["online"] is True and status["used"] == 0 and status["max"] == 1
    assert ctx.valkey.zscore(ctx.keys.available, m) == ctx.now_ms()
    clock.advance(60)
    assert availability.find_available_mitras(ctx, 25) == [m]


@on_both_topologies
def test_remove_offlined_takes_mitras_out_of_every_index(mirror_ctx: AppContext) -> None:
    ctx = mirror_ctx
    availability.ensure_seeded(ctx)
    a, b, c = new_mitra(ctx), new_mitra(ctx), new_mitra(ctx)
    for m in (a, b, c):
        availability.set_online(ctx, m, "test")
    assert availability.remove_offlined(ctx, f"{a},{c}") == 2
    state = mirror_state.actual(ctx)
    assert state["online"] == {b} and state["available"] == {b} and state["ring"] == {b}
    assert state["heartbeat_members"] == {b}


@on_both_topologies
def test_a_flushed_mirror_answers_from_postgres_then_reseeds_to_equality(mirror_ctx: AppContext) -> None:
    ctx = mirror_ctx
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "test")
    availability.seed_from_postgres(ctx)
    ctx.valkey.flushall()
    assert availability.count_available(ctx)["source"] == "postgres"
    assert availability.count_available(ctx)["source"] == "mirror"
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


def test_find_in_a_mostly_stale_ring_picks_only_fresh_mitras_and_never_excluded_ones(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = sorted(str(uuid.uuid4()) for _ in range(2000))
    fresh = ids[::40]  # 50 fresh mitras spread over a ring of 2000 (a heartbeat blackout)
    fresh_ms, stale_ms = ctx.now_ms(), availability.cutoff_ms(ctx) - 1000
    scores = {mid: stale_ms for mid in ids} | dict.fromkeys(fresh, fresh_ms)
    ctx.valkey.zadd(ctx.keys.available, scores)
    ctx.valkey.zadd(ctx.keys.ring, dict.fromkeys(ids, 0))
    excluded = fresh[:3]
    seen: set[str] = set()
    for _ in range(3):
        picked = availability.find_available_mitras(ctx, 25, excluded)
        assert len(picked) == len(set(picked)) == 25
        assert set(picked) <= set(fresh) - set(excluded)
        seen |= set(picked)
    assert seen == set(fresh) - set(excluded)  # the rotation still reaches every fresh mitra


def test_a_ping_that_lands_while_a_reseed_builds_its_keys_survives_the_swap(
    isolated_ctx: AppContext, clock: FakeClock, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "test")
    clock.advance(40)
    fill = seed._fill

    def fill_then_ping(*args: Any) -> Any:  # after its chunk was filled (and merged), before the swap
        filled = fill(*args)
        availability.heartbeat(ctx, Principal("mitra", m, "00000000-0000-0000-0000-000000000000"))
        return filled

    monkeypatch.setattr(seed, "_fill", fill_then_ping)
    assert availability.seed_from_postgres(ctx).ran
    assert ctx.valkey.zscore(ctx.keys.heartbeat, m) == ctx.now_ms()
    assert ctx.valkey.zscore(ctx.keys.available, m) == ctx.now_ms()
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


def test_reseed_counts_the_drift_of_every_structure_and_keeps_newer_live_pings(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    a, b, c, d = (new_mitra(ctx) for _ in range(4))
    capped, gone = new_mitra(ctx, max_sessions=2), new_mitra(ctx)
    for m in (a, b, c, d, capped):
        availability.set_online(ctx, m, "test")
    availability.deactivate(ctx, gone, "test")
    k = ctx.keys
    ctx.valkey.srem(k.online, a)  # one lost write per structure
    ctx.valkey.sadd(k.deactivated, "00000000-0000-4000-8000-000000000000")
    ctx.valkey.hset(k.used, b, 1)
    ctx.valkey.hset(k.max, c, 5)
    ctx.valkey.zrem(k.available, d)
    newer = ctx.now_ms() + 5_000  # a ping the heartbeat-mirror sweep has not copied yet
    ctx.valkey.zadd(k.heartbeat, {b: newer})
    clock.advance(1)

    report = availability.seed_from_postgres(ctx)

    assert report.ran and report.online == 5 and report.mitras == 6
    assert report.drift == {"online": 1, "deactivated": 1, "used": 1, "max": 1, "available": 1}
    assert ctx.valkey.zscore(k.heartbeat, b) == newer and ctx.valkey.zscore(k.available, b) == newer
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


def _slow_fill(monkeypatch: Any, ctx: AppContext, between: Any) -> None:
    """One mitra per seed slice, and `between()` run after each slice's fill call."""
    monkeypatch.setattr(mirror, "SEED_CHUNK", 1)
    scripts = dict(mirror.scripts(ctx))
    fill = scripts["seed_fill"]

    def fill_then_wait(*args: Any, **kwargs: Any) -> Any:
        reply = fill(*args, **kwargs)
        between()
        return reply

    scripts["seed_fill"] = fill_then_wait
    monkeypatch.setattr(mirror, "scripts", lambda _ctx: scripts)


def test_a_seed_longer_than_the_lock_ttl_keeps_its_lease_and_swaps(isolated_ctx: AppContext, monkeypatch: Any) -> None:
    ctx = isolated_ctx
    for _ in range(4):
        availability.set_online(ctx, new_mitra(ctx), "test")
    monkeypatch.setattr(seed, "SEED_LOCK_TTL_MS", 300)
    _slow_fill(monkeypatch, ctx, lambda: time.sleep(0.2))  # 0.8 s of fill against a 0.3 s lease
    assert seed.seed_from_postgres(ctx).ran
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


def test_a_seed_whose_lease_another_seed_took_stops_without_touching_the_live_mirror(
    isolated_ctx: AppContext, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    for _ in range(3):
        availability.set_online(ctx, new_mitra(ctx), "test")
    assert seed.seed_from_postgres(ctx).ran
    before = mirror_state.actual(ctx)
    ctx.valkey.sadd(ctx.keys.online, "not-a-mitra")  # a drift the lost seed must not heal

    def lease_expired_and_taken() -> None:
        ctx.valkey.set(ctx.keys.seed_lock, "another-seeder")

    _slow_fill(monkeypatch, ctx, lease_expired_and_taken)
    assert not seed.seed_from_postgres(ctx).ran
    assert ctx.valkey.smembers(ctx.keys.online) == before["online"] | {"not-a-mitra"}
    assert ctx.valkey.get(ctx.keys.seed_lock) == "another-seeder"
    assert not ctx.valkey.keys(ctx.keys.temp("*", "*"))
