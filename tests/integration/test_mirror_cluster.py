"""The mirror on a local 3-shard Valkey cluster (VALKEY_CLUSTER=1): every key shares the
{avail} hash tag, so scripts and pipelines stay on one shard and the same tests pass."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra.embedded import EmbeddedValkey, free_port
from shared import availability, context
from shared.context import AppContext
from tests import mirror_state
from tests.helpers import FakeClock
from tests.integration import test_mirror_core

pytestmark = pytest.mark.cluster

SLOTS = ((0, 5460), (5461, 10922), (10923, 16383))


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is valid too."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


@pytest.fixture(scope="module")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three cluster-enabled valkey-servers, met and given a third of the slots each."""
    root: Path = tmp_path_factory.mktemp("cluster")
    nodes: list[EmbeddedValkey] = []
    try:
        for i in range(3):
            nodes.append(EmbeddedValkey(root / f"n{i}", port=_cluster_port(), cluster=True).start())
        clients = [redis.Redis(host="127.0.0.1", port=n.port, decode_responses=True) for n in nodes]
        for client, (low, high) in zip(clients, SLOTS, strict=True):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        for n in nodes[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", n.port)
        deadline = time.monotonic() + 20
        while not all("cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
            assert time.monotonic() < deadline, "cluster did not converge"
            time.sleep(0.05)
        for c in clients:
            c.close()
        yield nodes[0].url
    finally:
        for n in nodes:
            n.stop()


@pytest.fixture
def cluster_ctx(isolated_ctx: AppContext, valkey_cluster: str) -> Iterator[AppContext]:
    ctx = AppContext(
        dataclasses.replace(isolated_ctx.settings, valkey_url=valkey_cluster, valkey_cluster=True),
        clock=isolated_ctx.clock,
    )
    context.install(ctx)
    try:
        yield ctx
    finally:
        ctx.close()


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
