"""Every function of the plan, with the plan's real [env], answers on a 3-node TLS Valkey cluster.

The session stand-in points the functions at one plain Valkey. Here the deployment's own
[env] (defaults.toml: VALKEY_CLUSTER=1, the production prefix, Fazpass, FCM) is kept, with
only what cannot exist on loopback replaced: Postgres through DATABASE_URL instead of the
Cloud SQL connector. Valkey is a 3-node cluster of Debian's redis-server speaking only TLS
(`tls-cluster yes`), its certificate naming 127.0.0.1 and signed by its own CA, given as
VALKEY_CA_CERT as Memorystore's would be. Every function of the plan is served under gunicorn
with the plan's THREADS (functions whose env and secrets are identical share a process, each
loaded on its own); each answers its smoke request, with a real caller's token where it checks
one, without a 5xx; healthz reports Valkey ok through the cluster; every Scheduler job reaches
its sweep and the sweep runs. The module has its own xdist group, so it runs beside the other
platform tests rather than after them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
import redis

from infra import deploy
from infra.embedded import free_port
from shared import manifest
from shared.config import JWT_AUTH_KINDS
from tests.integration.test_valkey_tls import authority, server_files
from tests.platform import standin
from tests.platform.principals import signing_context, token_for
from tests.platform.standin import Platform, json_lines

REDIS_SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.skipif(REDIS_SERVER is None, reason="needs Debian's redis-server (make test installs it)"),
    pytest.mark.xdist_group("platform-real-env"),
]
PARAM = "00000000-0000-4000-8000-000000000000"
SLOTS = ((0, 5460), (5461, 10922), (10923, 16383))


def _port() -> int:
    while (port := free_port()) > 55535:  # the cluster bus listens on port + 10000
        pass
    return port


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(rediss:// URL of one node, the CA's PEM) of a converged 3-node TLS-only cluster."""
    root = tmp_path_factory.mktemp("tls-cluster")
    ca = authority("memorystore-instance-ca")
    cert_file, key_file = server_files(ca, "127.0.0.1", root / "certs")
    ca_file = root / "certs" / "ca.pem"
    ca_file.write_text(ca.pem)
    procs: list[subprocess.Popen[bytes]] = []

    def node() -> tuple[int, redis.Redis]:
        """Start one node on a free port (another, when a process took it first) and connect."""
        for _attempt in range(5):
            port = _port()
            folder = root / str(port)
            folder.mkdir()
            args = [
                str(REDIS_SERVER), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
                "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no", "--tls-cluster", "yes",
                "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
                "--save", "", "--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "log"),
            ]  # fmt: skip
            procs.append(proc := subprocess.Popen(args))
            deadline = time.monotonic() + 30
            while proc.poll() is None:  # it exits when its port or bus port (+10000) is taken
                try:
                    client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_data=ca.pem)
                    client.ping()
                    return port, client
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, f"node {port} did not start"
                    time.sleep(0.1)
        raise AssertionError("no free port pair for a cluster node")

    try:
        ports, clients = zip(*(node() for _ in range(3)), strict=True)
        for client, (low, high) in zip(clients, SLOTS, strict=True):
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        for port in ports[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        deadline = time.monotonic() + 30
        while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
            assert time.monotonic() < deadline, "the TLS cluster did not converge"
            time.sleep(0.1)
        for client in clients:
            client.close()
        yield f"rediss://127.0.0.1:{ports[0]}", ca.pem
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def real_platform(tls_cluster, test_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The whole plan with the real [env] on the TLS cluster, every function already started."""
    url, ca_pem = tls_cluster
    root = tmp_path_factory.mktemp("real-env")
    config = deploy.load_config("bestie-prod", "asia-southeast2")
    env = {**config.env, "CLOUD_SQL_INSTANCE": "", "VALKEY_PREFIX": f"real{uuid.uuid4().hex[:8]}:"}
    config = replace(
        config, ingress_settings="internal-and-gclb", env={**env, "TRUSTED_PROXY_HOPS": "2"},
        secrets={**config.secrets, "VALKEY_CA_CERT": "VALKEY_CA_CERT"},
    )  # fmt: skip
    assert config.env["VALKEY_CLUSTER"] == "1" and config.env["PUSH_PROVIDER"] == "fcm"
    the_plan = deploy.plan(manifest.load().functions, config, {}, root / "plan")
    values = {**standin.test_secret_values(test_env["DATABASE_URL"], url), "VALKEY_CA_CERT": ca_pem}
    platform = Platform(the_plan, values, root, shared_processes=True)
    try:
        platform.start_all(fp.fn.name for fp in the_plan.functions)
        yield platform
    finally:
        platform.stop()


def _path(fn: manifest.Function) -> str:
    return "/" + "/".join(PARAM if s.startswith(":") else s for s in fn.segments)


def _served(platform: Platform, name: str, request_id: str) -> list[dict]:
    return [e for e in json_lines(platform.log_lines(name)) if "httpRequest" in e and e.get("request_id") == request_id]


def test_every_function_runs_with_the_plans_threads_on_the_tls_cluster(real_platform: Platform):
    for fp in real_platform.plan.functions:
        env = real_platform.environment(fp.fn.name)
        assert env["THREADS"] == str(fp.fn.concurrency), fp.fn.name
        assert env["VALKEY_URL"].startswith("rediss://") and env["VALKEY_CLUSTER"] == "1", fp.fn.name
        assert "BEGIN CERTIFICATE" in env["VALKEY_CA_CERT"], fp.fn.name


def test_every_public_function_of_the_plan_answers_its_smoke_request(real_platform: Platform):
    public = [fp.fn for fp in real_platform.plan.functions if fp.public]
    assert len(public) > 60
    signer = signing_context(real_platform.secret_values["AUTH_JWT_SECRET"])
    try:
        for fn in public:
            request_id = uuid.uuid4().hex
            headers = {"X-Request-Id": request_id}
            if fn.auth in JWT_AUTH_KINDS:
                headers["Authorization"] = f"Bearer {token_for(signer, fn)}"
            resp = real_platform.open(fn.method, "https://api.bestie.example" + _path(fn), headers=headers)
            assert resp.status_code < 500, (fn.name, resp.status_code, resp.get_data(as_text=True)[:300])
            if fn.auth in JWT_AUTH_KINDS:  # the caller's token verified with the deployed key
                assert resp.status_code != 401, (fn.name, resp.get_data(as_text=True)[:300])
            if fn.access_log == "errors" and resp.status_code < 400:
                continue  # the heartbeat logs only its failures (docs/availability.md)
            served = _served(real_platform, fn.name, request_id)
            assert served and served[0]["function"] == fn.name, f"{fn.method} {fn.route} did not reach {fn.name}"
    finally:
        signer.close()


def test_healthz_reports_valkey_ok_through_the_cluster(real_platform: Platform):
    health = real_platform.open("GET", "https://api.bestie.example/healthz")
    assert health.status_code == 200, health.get_data(as_text=True)
    assert "ok" in health.get_data(as_text=True).lower()


def test_every_scheduler_job_reaches_its_sweep_and_the_sweep_runs(real_platform: Platform):
    jobs = real_platform.plan.jobs
    sweeps = {fp.fn.name for fp in real_platform.plan.functions if fp.fn.is_sweep}
    assert {job.name.rsplit("/", 1)[-1] for job in jobs} == sweeps and sweeps
    # All at once: the sub-minute sweeps spend a minute's passes in one invocation.
    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(real_platform.fire, jobs))
    for job, resp in zip(jobs, answers, strict=True):
        assert resp.status_code == 200, (job.name, resp.get_data(as_text=True)[:300])
        assert resp.json["ran"] is True, (job.name, resp.json)
