"""Valkey over TLS for real: a TLS server whose certificate names an IP, as Memorystore's do.

Memorystore for Valkey with in-transit encryption serves TLS with a certificate issued by the
instance's own certificate authority, reached by the endpoint's IP address
(https://cloud.google.com/memorystore/docs/valkey/about-in-transit-encryption). The functions
reach it with the production settings of `shared/valkey.make_client`: `rediss://IP:port`,
`ssl_cert_reqs="required"` and the CA from VALKEY_CA_CERT. What the client must check, and
these tests show it does: the chain up to that CA (a certificate from any other CA is
refused), and that the certificate names the address connected to. redis-py matches the
host it connects to (`server_hostname`, `ssl_check_hostname` defaults to True), and Python's
ssl matches an IP address against the certificate's IP subject alternative names
(https://docs.python.org/3/library/ssl.html#ssl.SSLContext.check_hostname), so a certificate
for another IP is refused too.

The server is Debian's redis-server (built with TLS; `make test` installs it when missing).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.embedded import free_port
from shared.config import Settings
from shared.valkey import make_client

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs Debian's redis-server (make test installs it)")


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def authority(common: str) -> Authority:
    """A self-signed CA, as each Memorystore instance has its own."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return Authority(key, cert)


def server_files(ca: Authority, ip: str, folder: Path) -> tuple[Path, Path]:
    """A server certificate naming `ip` (and no host name), signed by `ca`: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name("memorystore-node")).issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca.cert.public_bytes(serialization.Encoding.PEM)
    )
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Authority, Path]]:
    """redis-server speaking only TLS on 127.0.0.1, its certificate naming 127.0.0.1: (port, CA, dir)."""
    ca = authority("memorystore-instance-ca")
    cert_file, key_file = server_files(ca, "127.0.0.1", tmp_path / "certs")
    port = free_port()
    log = tmp_path / "redis.log"
    args = [
        str(REDIS_SERVER), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
        "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        "--logfile", str(log),
    ]  # fmt: skip
    proc = subprocess.Popen(args)
    try:
        deadline = time.monotonic() + 10
        while "Ready to accept connections" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, log.read_text() if log.exists() else "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield port, ca, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _client(url: str, ca_pem: str) -> redis.Redis:
    client = make_client(Settings.from_env({"VALKEY_URL": url, "VALKEY_CA_CERT": ca_pem}))
    assert isinstance(client, redis.Redis)
    return client


def test_the_production_client_reaches_a_tls_server_named_by_its_ip(tls_server):
    port, ca, _ = tls_server
    client = _client(f"rediss://127.0.0.1:{port}", ca.pem)
    try:
        assert client.set("tls-probe", "ok", ex=30) and client.get("tls-probe") == "ok"
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["ssl_cert_reqs"] == "required" and kwargs.get("ssl_check_hostname", True) is True
    finally:
        client.close()


def test_a_certificate_from_another_authority_is_refused(tls_server):
    port, _, _ = tls_server
    client = _client(f"rediss://127.0.0.1:{port}", authority("some-other-ca").pem)
    try:
        with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            client.ping()
    finally:
        client.close()


def test_a_certificate_for_another_ip_is_refused(tls_server, tmp_path):
    # The same CA, but the server's certificate names 10.0.0.9 while the client dials 127.0.0.1.
    port, ca, _ = tls_server
    other_cert, other_key = server_files(ca, "10.0.0.9", tmp_path / "other")
    admin = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_data=ca.pem)
    admin.execute_command("CONFIG", "SET", "tls-cert-file", str(other_cert), "tls-key-file", str(other_key))
    admin.close()
    client = _client(f"rediss://127.0.0.1:{port}", ca.pem)
    try:
        with pytest.raises(redis.ConnectionError, match="IP address mismatch"):
            client.ping()
    finally:
        client.close()
