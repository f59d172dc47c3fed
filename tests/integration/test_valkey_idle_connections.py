"""Idle Valkey connections are checked in cluster mode too (the production client settings).

redis-py's `health_check_interval` (a PING before reusing a connection idle that long) is not
among the keyword arguments RedisCluster passes to its node connections (`REDIS_ALLOWED_KEYS`
in redis/cluster.py, redis-py 8.1), so in cluster mode it is silently dropped. The working
equivalent is TCP keepalive, which is passed through: the kernel probes an idle connection,
keeps it alive through NAT and connector idle timeouts, and turns a dead peer into an error
on the next command (which the cluster client retries on a fresh connection) instead of a
hang until the socket timeout.
"""

from __future__ import annotations

import socket
from dataclasses import replace

from shared.config import Settings
from shared.valkey import KEEPALIVE_IDLE_SECONDS, make_client


def _sockets(client) -> list[socket.socket]:
    found = []
    for node in client.get_nodes():
        pool = node.redis_connection.connection_pool
        for conn in list(pool._available_connections) + list(pool._in_use_connections):
            if conn._sock is not None:
                found.append(conn._sock)
    return found


def test_cluster_node_connections_use_tcp_keepalive_since_health_checks_are_dropped(valkey_cluster):
    settings = replace(Settings.from_env({"VALKEY_URL": valkey_cluster}), valkey_cluster=True)
    client = make_client(settings)
    try:
        for i in range(30):  # keys on every shard, so every node gets a connection
            client.set(f"keepalive-{i}", "1", ex=60)
        sockets = _sockets(client)
        assert len(sockets) >= 3
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE_SECONDS
        # What makes keepalive necessary: the cluster's node connections have no health check.
        node = client.get_nodes()[0].redis_connection.connection_pool
        assert node.connection_kwargs.get("health_check_interval", 0) == 0
    finally:
        client.close()
