"""The mirror on a local 3-shard Valkey cluster (VALKEY_CLUSTER=1): every key shares the
{avail} hash tag, so scripts and pipelines stay on one shard.

The behaviour tests of the mirror and the sweeps run on the cluster too: they are marked
`on_both_topologies` (tests.support.helpers) in test_mirror_core.py and test_sweeps_jobs.py.
"""

from __future__ import annotations

import pytest
import redis

from shared.context import AppContext

pytestmark = pytest.mark.cluster


def test_mirror_keys_live_on_one_shard(cluster_ctx: AppContext) -> None:
    k = cluster_ctx.keys
    slots = {redis.RedisCluster.keyslot(cluster_ctx.valkey, key) for key in (k.online, k.available, k.revoked("x"))}
    assert len(slots) == 1
