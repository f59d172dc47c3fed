"""Valkey really stopped: reads answer from Postgres, the guard holds, writes land in Postgres,
and a restarted (empty) Valkey is reseeded to match Postgres."""

from __future__ import annotations

from typing import Any

import pytest

from infra.embedded import EmbeddedValkey
from shared import availability
from shared.context import AppContext
from tests.support import apps, mirror_state
from tests.support.helpers import FakeClock
from tests.support.mirror_state import new_mitra, open_session
from tests.support.tokens import bearer, cc_token, mitra_token


def test_everything_keeps_working_from_postgres_and_the_mirror_reseeds(
    isolated_ctx: AppContext, own_valkey: EmbeddedValkey, clock: FakeClock
) -> None:
    ctx = apps.with_valkey(isolated_ctx, own_valkey.url)
    availability.ensure_seeded(ctx)
    busy, idle, gone, later = (new_mitra(ctx) for _ in range(4))
    tokens = {m: mitra_token(ctx, m)[0] for m in (busy, idle, gone, later)}
    for m in (busy, idle, gone):
        availability.set_online(ctx, m, "t")
    open_session(ctx, busy)
    availability.recompute_capacity(ctx, busy)
    cc = bearer(cc_token(ctx))
    healthy = (
        availability.count_available(ctx)["available"],
        availability.find_available_mitras(ctx, 25),
        availability.dashboard_counts(ctx),
    )

    own_valkey.stop()

    # Reads: same answers, from Postgres.
    beacon = availability.count_available(ctx)
    assert beacon["source"] == "postgres" and beacon["available"] == healthy[0] == 2
    assert sorted(availability.find_available_mitras(ctx, 25)) == sorted(healthy[1]) == sorted([idle, gone])
    assert availability.is_mitra_reachable(ctx, idle) is True
    counts = apps.client("dashboard").get("/internal/dashboard", headers=cc).json
    assert {k: counts[k] for k in ("online", "available", "deactivated")} == {
        k: healthy[2][k] for k in ("online", "available", "deactivated")
    }
    listing = apps.client("mitras_list").get("/internal/mitras", headers=cc).json
    assert listing["live_source"] == "postgres"
    assert {m["id"]: m["live"]["used"] for m in listing["mitras"]}[busy] == 1
    status = apps.client("mitra_status_get").get("/api/mitra/status", headers=bearer(tokens[busy]))
    assert status.status_code == 200 and status.json["used"] == 1 and status.json["online"] is True

    # Writes land in Postgres.
    availability.deactivate(ctx, gone, "cc:test")
    assert (
        apps.client("mitra_status_online").post("/api/mitra/status/online", headers=bearer(tokens[later])).status_code
        == 200
    )
    patched = apps.client("mitras_patch").patch(
        f"/internal/mitras/{idle}", json={"max_concurrent_sessions": 2}, headers=cc
    )
    assert patched.status_code == 200

    # The guard falls back to Postgres: the deactivated mitra is rejected, the active one's ping is stored.
    clock.advance(20)
    rejected = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=bearer(tokens[gone]))
    assert rejected.status_code == 403 and rejected.json["error"]["code"] == "ACCOUNT_INACTIVE"
    beat = apps.client("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=bearer(tokens[idle]))
    assert beat.status_code == 200 and beat.json["online"] is True
    stored = ctx.db.scalar("SELECT last_heartbeat_at FROM mitras WHERE id = CAST(:m AS uuid)", m=idle)
    assert stored == ctx.now()

    # Valkey comes back empty: the next read reseeds, and the mirror equals Postgres.
    own_valkey.restart()
    assert availability.count_available(ctx)["source"] == "postgres"  # this call seeds
    assert availability.count_available(ctx)["source"] == "mirror"
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)
    assert ctx.valkey.zscore(ctx.keys.heartbeat, idle) == ctx.now_ms()
    # The seed restored the revocation of the deactivated mitra's session.
    again = apps.client("mitra_status_get").get("/api/mitra/status", headers=bearer(tokens[gone]))
    assert again.status_code == 403 and again.json["error"]["code"] == "ACCOUNT_INACTIVE"


def test_only_the_lock_holder_seeds_while_others_use_postgres(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "t")
    ctx.valkey.set(ctx.keys.seed_lock, "another-instance", px=60_000)
    assert availability.find_available_mitras(ctx, 25) == [m]  # answered by Postgres
    assert not ctx.valkey.exists(ctx.keys.seeded)
    assert availability.seed_from_postgres(ctx).ran is False
    ctx.valkey.delete(ctx.keys.seed_lock)
    assert availability.ensure_seeded(ctx) is True
    assert ctx.valkey.exists(ctx.keys.seeded)


def test_writes_during_a_seed_are_reapplied_after_the_swap(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    m = new_mitra(ctx)
    # A write mirrored while a seed holds the lock lands in the dirty set ...
    ctx.valkey.set(ctx.keys.seed_lock, "t", px=60_000)
    availability.set_online(ctx, m, "t")
    assert ctx.valkey.sismember(ctx.keys.seed_dirty, m)
    ctx.valkey.delete(ctx.keys.seed_lock)
    report = availability.seed_from_postgres(ctx)
    assert report.ran and report.resynced == 1
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


def test_reseed_reports_and_heals_drift(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "t")
    ctx.valkey.srem(ctx.keys.online, m)  # drift: a lost mirror write
    report = availability.seed_from_postgres(ctx)
    assert report.ran and report.drift["online"] == 1
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)


def _lose_the_seed_lock_just_before_the_swap(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Another instance takes the seed lock right before the first script that swaps (names both
    the lock and `seeded`) reaches Valkey: the temp keys are built, the lock is no longer ours.
    The returned list records the interception, so the test knows the swap was really raced."""
    valkey, k = ctx.valkey, ctx.keys
    real = valkey.execute_command
    taken: list[str] = []

    def execute_command(*args: Any, **options: Any) -> Any:
        if not taken and str(args[0]).upper() in ("EVALSHA", "EVAL", "FCALL") and {k.seed_lock, k.seeded} <= set(args):
            assert real("SET", k.seed_lock, "another-instance", "PX", 60_000)
            taken.append(str(args[0]))
        return real(*args, **options)

    monkeypatch.setattr(valkey, "execute_command", execute_command)
    return taken


def test_a_seed_that_loses_its_lock_before_the_swap_leaves_the_mirror_unseeded_and_readers_use_postgres(
    isolated_ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = isolated_ctx
    m = new_mitra(ctx)
    availability.set_online(ctx, m, "t")
    taken = _lose_the_seed_lock_just_before_the_swap(ctx, monkeypatch)

    report = availability.seed_from_postgres(ctx)

    assert taken, "the seed never reached its swap"
    assert report.ran is False
    assert not ctx.valkey.exists(ctx.keys.seeded)
    assert ctx.valkey.get(ctx.keys.seed_lock) == "another-instance"  # the new holder's lock is left alone
    assert not [key for key in ctx.valkey.scan_iter(f"{ctx.keys.prefix}*") if ":tmp:" in key]  # scratch dropped
    # Readers never trust the unwritten mirror (and cannot seed it while the lock is held).
    assert availability.find_available_mitras(ctx, 25) == [m]
    assert availability.count_available(ctx)["source"] == "postgres"
    assert availability.count_available(ctx)["available"] == 1
    assert availability.dashboard_counts(ctx)["source"] == "postgres"
    assert not ctx.valkey.exists(ctx.keys.seeded)
