"""Fixtures: one real Postgres and one real Valkey per test run, started from pip packages.

The servers start on the first test that needs them: tests/unit never does, so the unit tier
runs in seconds with no server at all.

Set TEST_DATABASE_URL / TEST_VALKEY_URL to run against servers of your own (docker or remote)
instead. Every test gets an AppContext with its own Valkey key prefix, installed as the
process-wide context, so function tests and service tests see the same adapters.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pg8000.native
import pytest
import redis

from infra import embedded, migrate
from infra.embedded import EmbeddedValkey, free_port
from shared.config import Settings
from shared.context import AppContext
from shared.db import Database, parse_database_url
from tests import apps
from tests.helpers import FakeClock, installed

TEST_ENV = {
    "AUTH_JWT_SECRET": "test-secret-" + "x" * 40,
    "OTP_HMAC_SECRET": "test-otp-secret-" + "y" * 32,
    "ENABLE_TEST_ENDPOINTS": "1",
    "SWEEP_AUTH": "none",
    "OTP_PROVIDER": "log",
    "PUSH_PROVIDER": "log",
    "CC_ORIGIN": "https://cc.example.test",
    "TRUSTED_PROXY_HOPS": "1",
    "VALKEY_PREFIX": "test:",
}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def pg_server(data_root: Path) -> Iterator[str]:
    """DATABASE_URL of the session's Postgres."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    server = embedded.EmbeddedPostgres(data_root / "postgres").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def valkey_server(data_root: Path) -> Iterator[str]:
    """VALKEY_URL of the session's Valkey."""
    if os.environ.get("TEST_VALKEY_URL"):
        yield os.environ["TEST_VALKEY_URL"]
        return
    server = embedded.EmbeddedValkey(data_root / "valkey").start()
    try:
        yield server.url
    finally:
        server.stop()


SERVER_FREE_TIERS = ("unit", "clients")


@pytest.fixture(autouse=True)
def _servers_unless_unit(request: pytest.FixtureRequest) -> None:
    """Every tier but tests/unit runs against the servers; unit tests never start them."""
    if request.path.parent.name not in SERVER_FREE_TIERS:
        request.getfixturevalue("test_env")


@pytest.fixture(scope="session")
def test_env(pg_server: str, valkey_server: str) -> Iterator[dict[str, str]]:
    """Point the process at the test servers and migrate the database once."""
    env = {**TEST_ENV, "DATABASE_URL": pg_server, "VALKEY_URL": valkey_server}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    db = Database(Settings.from_env())
    migrate.migrate(db)
    db.close()
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_context(clock: Callable[..., Any] | None = None, **overrides: Any) -> AppContext:
    """A context on the test servers with a fresh key prefix (and any setting overridden)."""
    settings = replace(Settings.from_env(), valkey_prefix=f"t{uuid.uuid4().hex[:12]}:", **overrides)
    return AppContext(settings, clock=clock) if clock else AppContext(settings)


@pytest.fixture
def ctx() -> Iterator[AppContext]:
    """A fresh context (own key prefix, real clock) installed as the process-wide one."""
    with installed(make_context()) as app_ctx:
        yield app_ctx


@pytest.fixture(scope="session")
def template_db(test_env: dict[str, str]) -> str:
    """A migrated database used as the template of every isolated database."""
    name = "bestie_template"
    with _admin_connection(test_env["DATABASE_URL"]) as admin:
        admin.run(f"DROP DATABASE IF EXISTS {name}")
        admin.run(f"CREATE DATABASE {name}")
    db = Database(replace(Settings.from_env(), database_url=_url_for(test_env["DATABASE_URL"], name)))
    migrate.migrate(db)
    db.close()
    return name


@contextlib.contextmanager
def isolated_database(template_db: str, test_env: dict[str, str]) -> Iterator[str]:
    """The DATABASE_URL of a brand-new database cloned from the migrated template, dropped after."""
    name = f"iso_{uuid.uuid4().hex[:12]}"
    with _admin_connection(test_env["DATABASE_URL"]) as admin:
        admin.run(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    try:
        yield _url_for(test_env["DATABASE_URL"], name)
    finally:
        with _admin_connection(test_env["DATABASE_URL"]) as admin:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def isolated_ctx(template_db: str, test_env: dict[str, str], clock: FakeClock) -> Iterator[AppContext]:
    """A context on a brand-new migrated database of its own, with the injectable `clock`.

    For tests that look at global state (every online mitra, whole-mirror equality, sweeps)
    or change it (app_config): nothing another test wrote is visible, nothing leaks out.
    Installed as the process-wide context.
    """
    with isolated_database(template_db, test_env) as url, installed(make_context(clock, database_url=url)) as app_ctx:
        yield app_ctx


def _url_for(url: str, database: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{database}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def _admin_connection(url: str) -> Iterator[Any]:
    p = parse_database_url(url)
    conn = pg8000.native.Connection(
        p.user, host=p.host or "localhost", port=p.port, database="postgres", password=p.password, unix_sock=p.unix_sock
    )
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def call(ctx: AppContext) -> Callable[[str], Any]:
    """`call(entry_point)` -> a Flask test client of that function (tests.apps' cached app)."""
    return apps.client


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[embedded.EmbeddedValkey]:
    """A Valkey server of this test's own, which the test may stop and restart."""
    server = embedded.EmbeddedValkey(tmp_path / "valkey").start()
    try:
        yield server
    finally:
        server.stop()


# ---- a local 3-shard Valkey cluster (VALKEY_CLUSTER=1), started only by tests that ask -------

SLOTS = ((0, 5460), (5461, 10922), (10923, 16383))


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is valid too."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


@pytest.fixture(scope="session")
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
def mirror_ctx(request: pytest.FixtureRequest, isolated_ctx: AppContext) -> AppContext:
    """isolated_ctx on the single Valkey, or on the cluster for tests marked `on_both_topologies`."""
    if getattr(request, "param", "single") == "cluster":
        cluster: AppContext = request.getfixturevalue("cluster_ctx")
        return cluster
    return isolated_ctx


@pytest.fixture
def cluster_ctx(isolated_ctx: AppContext, valkey_cluster: str) -> Iterator[AppContext]:
    """isolated_ctx, but on the 3-shard cluster (a fresh key prefix per test)."""
    settings = replace(isolated_ctx.settings, valkey_url=valkey_cluster, valkey_cluster=True)
    with installed(AppContext(settings, clock=isolated_ctx.clock)) as ctx:
        yield ctx
