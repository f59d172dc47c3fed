"""Every function of the plan, with the plan's real [env], answers on a 3-node TLS Valkey cluster.

The session stand-in points the functions at one plain Valkey. Here the deployment's own
[env] (defaults.toml: VALKEY_CLUSTER=1, the production prefix, Fazpass, FCM) is kept, with
only what cannot exist on loopback replaced: Postgres through DATABASE_URL instead of the
Cloud SQL connector. Valkey is a 3-node cluster of Debian's redis-server speaking only TLS
(`tls-cluster yes`), its certificate naming 127.0.0.1 and signed by its own CA, given as
VALKEY_CA_CERT as Memorystore's would be. One public function of every group (each group's
cold start validates the real env) and every sweep are served under gunicorn with the plan's
THREADS; each answers without a 5xx, healthz reports Valkey ok through the cluster, and every
Scheduler job runs its sweep.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from infra import deploy
from infra.embedded import free_port
from shared import manifest
from tests.integration.test_valkey_tls import authority, server_files
from tests.platform import standin
from tests.platform.standin import Platform

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs Debian's redis-server (make test installs it)")
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
    ports, procs = [_port() for _ in range(3)], []
    try:
        for port in ports:
            folder = root / str(port)
            folder.mkdir()
            args = [
                str(REDIS_SERVER), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
                "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no", "--tls-cluster", "yes",
                "--cluster-enabled", "yes", "--cluster-config-file", str(folder / "nodes.conf"),
                "--save", "", "--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "log"),
            ]  # fmt: skip
            procs.append(subprocess.Popen(args))
        clients = []
        for port in ports:
            deadline = time.monotonic() + 15
            while True:
                try:
                    client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_data=ca.pem)
                    client.ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, f"node {port} did not start"
                    time.sleep(0.1)
            clients.append(client)
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


def test_every_group_answers_with_the_real_env_on_a_tls_cluster(tls_cluster, test_env, tmp_path: Path):
    url, ca_pem = tls_cluster
    config = deploy.load_config("bestie-prod", "asia-southeast2")
    env = {**config.env, "CLOUD_SQL_INSTANCE": "", "VALKEY_PREFIX": f"real{uuid.uuid4().hex[:8]}:"}
    config = replace(
        config, ingress_settings="internal-and-gclb", env={**env, "TRUSTED_PROXY_HOPS": "2"},
        secrets={**config.secrets, "VALKEY_CA_CERT": "VALKEY_CA_CERT"},
    )  # fmt: skip
    assert config.env["VALKEY_CLUSTER"] == "1" and config.env["PUSH_PROVIDER"] == "fcm"
    the_plan = deploy.plan(manifest.load().functions, config, {}, tmp_path / "plan")
    values = {
        **standin.test_secret_values(test_env["DATABASE_URL"], url),
        "VALKEY_CA_CERT": ca_pem,
    }
    platform = Platform(the_plan, values, tmp_path)
    try:
        # One public function of every group (each group's cold start validates the real env),
        # healthz (which reads Valkey through the cluster), and every sweep through its job.
        firsts = {}
        for fp in the_plan.functions:
            if fp.public:
                firsts.setdefault(fp.fn.group, fp.fn)
        public = list(firsts.values())
        platform.start_all([*(fn.name for fn in public), *(fp.fn.name for fp in the_plan.functions if fp.fn.is_sweep)])
        for fn in public:
            path = "/" + "/".join(
                "00000000-0000-4000-8000-000000000000" if s.startswith(":") else s for s in fn.segments
            )
            resp = platform.open(fn.method, "https://api.bestie.example" + path)
            assert resp.status_code < 500, (fn.name, resp.status_code, resp.get_data(as_text=True)[:300])
        health = platform.open("GET", "https://api.bestie.example/healthz")
        assert health.status_code == 200, health.get_data(as_text=True)
        assert "ok" in health.get_data(as_text=True).lower()
        for job in the_plan.jobs:
            resp = platform.fire(job)
            assert resp.status_code == 200, (job.name, resp.get_data(as_text=True)[:300])
    finally:
        platform.stop()
