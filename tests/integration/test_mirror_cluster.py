"""The mirror on a local 3-shard Valkey cluster (VALKEY_CLUSTER=1): every key shares the
{avail} hash tag, so scripts and pipelines stay on one shard and the same tests pass."""

from __future__ import annotations

import pytest
import redis

from shared import availability
from shared.context import AppContext
from tests import mirror_state
from tests.helpers import FakeClock
from tests.integration import test_mirror_core

pytestmark = pytest.mark.cluster


def test_mirror_keys_live_on_one_shard(cluster_ctx: AppContext) -> None:
    k = cluster_ctx.keys
    slots = {redis.RedisCluster.keyslot(cluster_ctx.valkey, key) for key in (k.online, k.available, k.revoked("x"))}
    assert len(slots) == 1


def test_seed_on_a_cluster(cluster_ctx: AppContext) -> None:
    test_mirror_core.test_seed_builds_the_mirror_postgres_implies(cluster_ctx)


def test_write_paths_on_a_cluster(cluster_ctx: AppContext) -> None:
    test_mirror_core.test_write_paths_keep_the_mirror_equal_to_postgres(cluster_ctx)


def test_reads_and_fallbacks_on_a_cluster(cluster_ctx: AppContext, clock: FakeClock) -> None:
    test_mirror_core.test_reads_from_the_mirror_and_from_postgres_agree(cluster_ctx, clock)


def test_heartbeat_on_a_cluster(cluster_ctx: AppContext, clock: FakeClock) -> None:
    test_mirror_core.test_heartbeat_refreshes_the_available_score(cluster_ctx, clock)


def test_remove_offlined_and_reseed_after_flush_on_a_cluster(cluster_ctx: AppContext) -> None:
    test_mirror_core.test_remove_offlined_takes_mitras_out_of_every_index(cluster_ctx)
    cluster_ctx.valkey.flushall()
    assert availability.count_available(cluster_ctx)["source"] == "postgres"
    assert availability.count_available(cluster_ctx)["source"] == "mirror"
    assert mirror_state.actual(cluster_ctx) == mirror_state.expected(cluster_ctx)
