"""Fixtures: one real Postgres and one real Valkey per test run, started from pip packages.

The servers start on the first test that needs them: tests/unit and tests/tooling never do, so those tiers
run in seconds with no server at all.

Set TEST_DATABASE_URL / TEST_VALKEY_URL to run against servers of your own (docker or remote)
instead. Every test gets an AppContext with its own Valkey key prefix, installed as the
process-wide context, so function tests and service tests see the same adapters.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from _pytest.nodeid import NodeId

from infra import embedded, migrate
from infra.embedded import EmbeddedValkey, free_port
from shared.config import Settings
from shared.context import AppContext
from shared.db import Database
from tests.support import apps, bytecode, scope_seconds
from tests.support.databases import IsolatedDatabases, connect, url_for
from tests.support.helpers import FakeClock, installed

REPO = Path(__file__).resolve().parent.parent

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
    "BCRYPT_COST": "4",  # the minimum; production keeps 12 (tests/unit/test_passwords.py)
}


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    """The data of this process's servers: a directory of its own, outside pytest's temp root
    (which every pytest run makes 0700 again), removed at the end (infra.embedded.private_root)."""
    root = embedded.private_root("bestie-test-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(data_root: Path) -> Iterator[str]:
    """DATABASE_URL of the session's Postgres."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    # No autovacuum: its workers' transactions count in pg_stat_database, which the tests that
    # prove a path makes no Postgres statement read (tests/support/server_counters.py), and it would
    # visit each database at its own moment. Tests that need statistics ANALYZE themselves.
    server = embedded.EmbeddedPostgres(data_root / "postgres", extra_settings={"autovacuum": "off"}).start()
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


SERVER_FREE_TIERS = ("unit", "tooling", "clients")

# ---- parallel runs: `make test` is `pytest -n auto --dist loadgroup` (pytest-xdist) ----------
# Each worker is a pytest process of its own, with its own servers (the session fixtures above)
# and its own isolated databases. Tests are spread one by one, except that each group below
# runs on one worker, in order: tests that start processes of their own (two at once would
# fight for the same cores) and tests sharing a costly session or module fixture (each worker
# would otherwise build it again).
XDIST_GROUPS = {
    # The stand-in's costly tests in groups of their own, so that both workers share the
    # platform's load: those below build platforms of their own, the rest share the session one.
    "tests/platform/test_real_env.py": "platform-real-env",  # its own platform on a TLS cluster
    "tests/platform/test_key_rotation.py": "platform-rollout",  # three generations of two functions
    "tests/platform/test_deployer_roles.py": "platform-roles",  # two platforms, one per set of roles
    "tests/platform/test_migration_job.py": "platform-roles",
    "tests/platform/test_deployed_functions.py::test_every_groups_cold_start_without": "platform-cold-starts",
    "tests/platform/": "platform",  # the deploy stand-in: bundles and a process per function
    "tests/faults/test_load_smoke.py": "load",  # bench.load: its own servers, two gunicorns, locust
    "tests/faults/test_chat_two_processes.py": "processes",
    "tests/integration/test_embedded_servers.py": "processes",  # starts servers and kills their parent
    "tests/functions/test_fuzz_openapi.py": "fuzz",  # one principal set and gateway per module
    "tests/browser/": "browser",  # one Chromium per module
    "tests/clients/": "clients",  # node, tsc and mypy on the generated clients
    "tests/compat/": "compat",  # the previous release's code beside this one's
    "tests/integration/test_bundle_vendoring.py": "bundles",  # every bundle built and probed once per run
}


def _xdist_group(item: pytest.Item) -> str | None:
    group = next((g for prefix, g in XDIST_GROUPS.items() if item.nodeid.startswith(prefix)), None)
    on_cluster = item.get_closest_marker("cluster") or {"valkey_cluster", "cluster_ctx"} & set(item.fixturenames)
    if group is None and on_cluster:
        group = "valkey-cluster"  # one 3-shard cluster per run
    return group


def _group_names(item: pytest.Item) -> list[str]:
    return sorted(
        {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    )


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark the XDIST_GROUPS tests as each is collected: before -m selects and xdist reads marks."""
    group = None if item.get_closest_marker("xdist_group") else _xdist_group(item)
    if group:
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(trylast=True)  # after xdist's own hook
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Node ids that xdist can schedule by: one per test, with the `@group` suffix of a group.

    schemathesis gives every operation of the fuzz test the test function's node id, and xdist
    keys its schedule by node id, so all but one operation were silently dropped: a repeated
    id is rebuilt from the item's own name (`...[GET /healthz]`). pytest-xdist 3.8 writes the
    group suffix to `item._nodeid`, which pytest 9.2 no longer reads (it keeps a structured
    `item._id`), so groups were ignored: https://github.com/pytest-dev/pytest-xdist/issues/1386.
    Nothing to do once xdist sets it.
    """
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and item.parent is not None:
            item._id = NodeId.parse(f"{item.parent.nodeid}::{item.name}")
    if not getattr(config.option, "loadgroup", False):  # set on the workers of a --dist loadgroup run
        return
    for item in items:
        names = _group_names(item)
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = NodeId.parse(item.nodeid + suffix)


# Work is handed out longest first, so that no long group starts last and leaves the other
# worker idle: each scope's seconds in the last parallel run (the pytest cache), else the
# estimate below (seconds on two idle cores), else a second for a test and half a minute for a group.
GROUP_SECONDS = {
    "platform": 30,
    "load": 110,
    "fuzz": 55,
    "platform-real-env": 55,
    "processes": 35,
    "platform-cold-starts": 15,
    "platform-rollout": 35,
    "platform-roles": 30,
    "valkey-cluster": 25,
    "clients": 25,
    "compat": 20,
    "browser": 15,
    "bundles": 25,
}
SCOPE_SECONDS_KEY = "bestie/xdist-scope-seconds"


def _scope(nodeid: str) -> str:
    """The unit xdist's loadgroup schedules: the group named after `@`, else the test itself."""
    return nodeid.split("@")[-1] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # before xdist's own
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadgroup, longest scope first (xdist's own orders by number of tests)."""
    if getattr(config.option, "dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    measured: dict[str, float] = cache.get(SCOPE_SECONDS_KEY, {}) if cache else {}

    snapshot = scope_seconds.load()  # for a run with no cache of its own (a fresh clone, CI)

    def seconds(scope: str) -> float:
        default = snapshot.get(scope) or GROUP_SECONDS.get(scope, 30.0 if "::" not in scope else 1.0)
        return float(measured.get(scope, default))

    class LongestFirst(LoadGroupScheduling):
        ordered = False

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the queue is complete before the first unit is handed out
                self.workqueue = OrderedDict(sorted(self.workqueue.items(), key=lambda unit: -seconds(unit[0])))
                self.ordered = True
            super()._assign_work_unit(node)

    return LongestFirst(config, log)


class _ScopeTimes:
    """On the controller of a parallel run: each scope's seconds, saved for the next run's order."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[_scope(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = getattr(session.config, "cache", None)
        if cache is not None and self.seconds:
            saved = cache.get(SCOPE_SECONDS_KEY, {})
            saved.update({scope: round(s, 2) for scope, s in self.seconds.items() if s >= 0.5})
            cache.set(SCOPE_SECONDS_KEY, saved)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    if getattr(config.option, "dist", "no") == "loadgroup":
        config.pluginmanager.register(_ScopeTimes(), "bestie-scope-times")
    if getattr(config.option, "numprocesses", None):
        bytecode.warm(config, REPO)  # before the workers start, each of which would write it all


@pytest.fixture(autouse=True)
def _servers_unless_unit(request: pytest.FixtureRequest) -> None:
    """Every tier but tests/unit, tests/tooling and tests/clients runs against the servers."""
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
def isolated_databases(test_env: dict[str, str]) -> Iterator[IsolatedDatabases]:
    """This process's migrated template and its clones, reset between the tests that hold them."""
    name = f"template_{uuid.uuid4().hex[:12]}"
    with connect(test_env["DATABASE_URL"], "postgres") as admin:
        admin.run(f"CREATE DATABASE {name}")
    db = Database(replace(Settings.from_env(), database_url=url_for(test_env["DATABASE_URL"], name)))
    migrate.migrate(db)
    db.close()
    pool = IsolatedDatabases(test_env["DATABASE_URL"], name)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def template_db(isolated_databases: IsolatedDatabases) -> str:
    """The name of the migrated database every isolated database is a clone of."""
    return isolated_databases.template


@contextlib.contextmanager
def isolated_database(template_db: str, test_env: dict[str, str]) -> Iterator[str]:
    """The DATABASE_URL of a database as a brand-new clone of the template would be, for the block."""
    with IsolatedDatabases.of(template_db).database() as url:
        yield url


@pytest.fixture
def isolated_ctx(template_db: str, test_env: dict[str, str], clock: FakeClock) -> Iterator[AppContext]:
    """A context on a migrated database of its own, with the injectable `clock`.

    For tests that look at global state (every online mitra, whole-mirror equality, sweeps)
    or change it (app_config): nothing another test wrote is visible, nothing leaks out
    (tests/support/databases.py: a reused clone is reset to the template's state first).
    Installed as the process-wide context.
    """
    with isolated_database(template_db, test_env) as url, installed(make_context(clock, database_url=url)) as app_ctx:
        yield app_ctx


_url_for = url_for  # the names test modules import


@contextlib.contextmanager
def _admin_connection(url: str) -> Iterator[Any]:
    with connect(url, "postgres") as conn:
        yield conn


@pytest.fixture
def call(ctx: AppContext) -> Callable[[str], Any]:
    """`call(entry_point)` -> a Flask test client of that function (tests.support.apps' cached app)."""
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
    """A free port whose cluster bus port (+10000) is valid and free too."""
    while True:
        port = free_port()
        if port <= 55535 and _is_free(port + 10000):
            return port


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_node(folder: Path, attempts: int = 5) -> EmbeddedValkey:
    """Start a cluster node; another process may take its port or bus port between the check
    and the bind, so a node that could not listen starts again on other ports."""
    for attempt in range(attempts):
        try:
            return EmbeddedValkey(folder / str(attempt), port=_cluster_port(), cluster=True).start()
        except RuntimeError as exc:
            if "Address already in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three cluster-enabled valkey-servers, met and given a third of the slots each."""
    root: Path = tmp_path_factory.mktemp("cluster")
    nodes: list[EmbeddedValkey] = []
    try:
        for i in range(3):
            nodes.append(_cluster_node(root / f"n{i}"))
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
