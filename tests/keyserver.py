"""A loopback stand-in for Google's and Apple's public-key endpoints.

Generates RSA keys, serves them as Google's x509 certs map (`/certs`, the format of
https://www.googleapis.com/oauth2/v1/certs) and as a JWKS (`/jwks`), and signs tokens with
them, so the real verifiers (google-auth, pyjwt) fetch keys over HTTP exactly as in production.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


class SigningKey:
    """An RSA key with a kid, its self-signed certificate and its JWK."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
        now = dt.datetime.now(dt.UTC)
        self.cert_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.private, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        self.jwk = {
            **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())),
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
        }

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid, **headers})


class KeyServer:
    """Serves /certs (Google x509 map) and /jwks (JWKS) for the keys it holds."""

    def __init__(self, kids: tuple[str, ...] = ("key-1",)) -> None:
        self.keys = {kid: SigningKey(kid) for kid in kids}
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if self.path.startswith("/certs"):
                    body: Any = {kid: k.cert_pem for kid, k in outer.keys.items()}
                elif self.path.startswith("/jwks"):
                    body = {"keys": [k.jwk for k in outer.keys.values()]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.certs_url, self.jwks_url = f"{base}/certs", f"{base}/jwks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> KeyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign(self, claims: dict[str, Any], kid: str = "key-1", **headers: Any) -> str:
        return self.keys[kid].sign(claims, **headers)


def google_claims(audience: str, email: str, *, lifetime: int = 300, **extra: Any) -> dict[str, Any]:
    """Claims shaped like a Google-signed OIDC id_token (Cloud Scheduler's)."""
    now = int(time.time())
    return {
        "iss": "https://accounts.google.com",
        "aud": audience,
        "sub": "1234567890",
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + lifetime,
        **extra,
    }
