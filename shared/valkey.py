"""Valkey adapter: client factory and server-side script loading.

redis-py talks to Valkey. `VALKEY_URL` may be `redis://` or `rediss://` (TLS, as Memorystore
uses with in-transit encryption, verified against the instance's CA from VALKEY_CA_CERT or
VALKEY_CA_FILE; config refuses a TLS URL without one); `VALKEY_CLUSTER=1` builds a `RedisCluster` client, which
follows MOVED/ASK redirects across shards. Timeouts are short on purpose: a hung Valkey
must turn into the Postgres fallback quickly, not into a hung request.

Scripts live in `.lua` files beside the module that uses them and are loaded with
`load_script()`: called by SHA (EVALSHA), reloaded by redis-py on NOSCRIPT.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

from shared.config import Settings
from shared.errors import ConfigError

Client = Union[redis.Redis, RedisCluster]

# TCP keepalive on every connection: probe after 30 s idle, every 5 s, 3 times. It keeps idle
# connections alive through NAT/connector idle timeouts and turns a dead peer into an error on
# the next command instead of a hang. It is the cluster client's idle check: RedisCluster drops
# `health_check_interval` (not in redis/cluster.py REDIS_ALLOWED_KEYS, redis-py 8.1) but passes
# these through. Set explicitly rather than relying on redis-py's default, which has changed.
KEEPALIVE_IDLE_SECONDS = 30
_KEEPALIVE = {
    option: value
    for option, value in (
        (getattr(socket, "TCP_KEEPIDLE", None), KEEPALIVE_IDLE_SECONDS),
        (getattr(socket, "TCP_KEEPINTVL", None), 5),
        (getattr(socket, "TCP_KEEPCNT", None), 3),
    )
    if option is not None
}

# Every error a Valkey call can raise for a fault (down, timeout, failover, READONLY, ...).
VALKEY_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


def make_client(settings: Settings, on_connect: Callable[[str], None] | None = None) -> Client:
    """Build a thread-safe client (a pool inside) from VALKEY_URL and VALKEY_CLUSTER.

    `on_connect(node)` runs after every new connection is set up, with the "host:port" it
    reached: a new connection means a cold start, a restarted or failed-over server, or a
    dropped (timed-out) one, after which what the server holds may no longer include every
    write made meanwhile.
    """
    if not settings.valkey_url:
        raise ConfigError("missing required environment variable VALKEY_URL")
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.valkey_timeout_seconds,
        "socket_connect_timeout": settings.valkey_timeout_seconds,
        "health_check_interval": 30,  # the plain client's idle check (dropped in cluster mode)
        "socket_keepalive": True,  # every client's, the cluster's included
        "socket_keepalive_options": _KEEPALIVE,
        # One immediate retry covers a dropped idle connection. Timeouts are not retried: a
        # Valkey that does not answer within the timeout goes to the fallback after one wait.
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    }
    if settings.valkey_url.startswith("rediss://"):
        common["ssl_cert_reqs"] = "required"
        if settings.valkey_ca_cert:
            common["ssl_ca_data"] = settings.valkey_ca_cert
        if settings.valkey_ca_file:
            common["ssl_ca_certs"] = settings.valkey_ca_file
    if on_connect is not None:
        hook = on_connect
        if settings.valkey_cluster:  # RedisCluster runs the node setup itself, then this
            common["redis_connect_func"] = lambda connection: hook(node_of(connection))
        else:  # a plain client's redis_connect_func replaces the setup, so run it first

            def setup_then_hook(connection: Any) -> None:
                connection.on_connect()
                hook(node_of(connection))

            common["redis_connect_func"] = setup_then_hook
    if settings.valkey_cluster:
        return RedisCluster.from_url(settings.valkey_url, **common)
    return redis.Redis.from_url(settings.valkey_url, **common)


def node_of(connection: Any) -> str:
    """ "host:port" of a redis-py connection (the same string for every connection to one node)."""
    return f"{getattr(connection, 'host', '')}:{getattr(connection, 'port', '')}"


def mirror_node(client: Client, key: str) -> str:
    """ "host:port" of the node serving `key` (the only node of a plain client)."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        return f"{node.host}:{node.port}"
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '')}:{kwargs.get('port', '')}"


def load_script(client: Client, path: Path, prelude: Path | None = None) -> Script:
    """Register the Lua script at `path`, after `prelude` if given (EVALSHA, reloaded on NOSCRIPT).

    Valkey scripts cannot import; a prelude file is how several scripts share one function.
    """
    source = path.read_text()
    if prelude is not None:
        source = prelude.read_text() + "\n" + source
    return client.register_script(source)
