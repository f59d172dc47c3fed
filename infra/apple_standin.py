"""A loopback stand-in for Sign in with Apple's REST API, for tests and `make dev`.

Modelled on Apple's pages, what the server relies on and nothing more:
- `GET /auth/keys`: the JWKS that signs id_tokens and notifications,
  https://developer.apple.com/documentation/sign_in_with_apple/fetch_apple_s_public_key_for_verifying_token_signature
- `POST /auth/token` (form; `grant_type=authorization_code`): checks the client secret (ES256,
  `kid` = the key id, `iss` = the team id, `aud` = https://appleid.apple.com, `sub` = client_id,
  not expired) and the code (known, unused, younger than five minutes, issued to that client);
  answers {access_token, token_type, expires_in, refresh_token, id_token}, or 400 with
  {"error": "invalid_client" | "invalid_grant" | "unsupported_grant_type" | "invalid_request"},
  https://developer.apple.com/documentation/sign_in_with_apple/generate_and_validate_tokens and
  https://developer.apple.com/documentation/sign_in_with_apple/errorresponse
- `POST /auth/revoke` (form: client_id, client_secret, token, token_type_hint): the same client
  check, then 200 with an empty body, for unknown tokens too (RFC 7009 §2.2); it ends the user's
  authorization of that client, so every refresh token of theirs stops,
  https://developer.apple.com/documentation/sign_in_with_apple/revoke_tokens
- Server-to-server notifications: `notification(...)` builds the body Apple posts,
  {"payload": <JWS signed with the keys above>} whose `events` claim is a JSON string
  {type, sub, event_time[, email, is_private_email]},
  https://developer.apple.com/documentation/sign_in_with_apple/processing-changes-for-sign-in-with-apple-accounts
- What the app's Apple sheet would give it (an id_token and an authorization code) comes from
  `authorize(...)`, or over HTTP from `POST /_dev/authorize` (JSON {sub, client_id, nonce?,
  email?}) so `make dev` can be driven with curl.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://appleid.apple.com"
CODE_LIFETIME_SECONDS = 300


@dataclass
class _Code:
    sub: str
    client_id: str
    email: str | None
    issued: float
    used: bool = False


@dataclass
class AppleStandIn:
    """Apple's keys, token and revoke endpoints on 127.0.0.1, with what they were asked."""

    team_id: str = "TEAM000001"
    key_id: str = "KEY0000001"
    signing_key: Any = None  # RSA private key of Apple's id_tokens (generated when None)
    signing_kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    revoke_failures: int = 0  # answer the next N revocations with 503 (a failing Apple)
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    revoked: list[str] = field(default_factory=list)  # refresh tokens revoked, in order
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.signing_key is None:
            self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_key = ec.generate_private_key(ec.SECP256R1())  # the team's Sign in with Apple key
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AppleStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def settings(self) -> dict[str, str]:
        """The environment that points the server at this stand-in (variable -> value)."""
        pem = self.client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {
            "APPLE_JWKS_URL": self.url + "/auth/keys",
            "APPLE_TOKEN_URL": self.url + "/auth/token",
            "APPLE_REVOKE_URL": self.url + "/auth/revoke",
            "APPLE_TEAM_ID": self.team_id,
            "APPLE_KEY_ID": self.key_id,
            "APPLE_PRIVATE_KEY": pem.decode(),
        }

    # ---- what Apple signs -----------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.signing_key.public_key()))
        return {"keys": [{**jwk, "kid": self.signing_kid, "use": "sig", "alg": "RS256"}]}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": self.signing_kid})

    def id_token(self, sub: str, client_id: str, nonce_hash: str | None = None, email: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": ISSUER, "aud": client_id, "sub": sub, "iat": now, "exp": now + 600}
        if nonce_hash:
            claims["nonce"] = nonce_hash
        if email:
            claims.update(
                email=email, email_verified="true", is_private_email="true" if "privaterelay" in email else "false"
            )
        return self._sign(claims)

    def issue_code(self, sub: str, client_id: str, email: str | None = None) -> str:
        """An authorization code for this user and client, as Apple's sheet hands it to the app."""
        code = "c" + secrets.token_hex(16)
        with self._lock:
            self.codes[code] = _Code(sub, client_id, email, time.time())
        return code

    def authorize(
        self, sub: str, client_id: str, nonce_hash: str | None = None, email: str | None = None
    ) -> tuple[str, str]:
        """(id_token, authorization code): what a completed Apple sign-in gives the app."""
        return self.id_token(sub, client_id, nonce_hash, email), self.issue_code(sub, client_id, email)

    def notification(self, client_id: str, event_type: str, sub: str, **event: Any) -> dict[str, str]:
        """The JSON body Apple posts to the notification URL for one event."""
        now = int(time.time())
        events = {"type": event_type, "sub": sub, "event_time": now * 1000, **event}
        claims = {"iss": ISSUER, "aud": client_id, "iat": now, "jti": uuid.uuid4().hex, "events": json.dumps(events)}
        return {"payload": self._sign(claims)}

    def live_refresh_tokens(self, sub: str) -> list[str]:
        with self._lock:
            return [t for t, held in self.refresh_tokens.items() if held["sub"] == sub and t not in self.revoked]

    # ---- the endpoints --------------------------------------------------------------------------

    def _client_ok(self, form: dict[str, str]) -> bool:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        try:
            header = jwt.get_unverified_header(secret)
            claims = jwt.decode(
                secret,
                self.client_key.public_key(),
                algorithms=["ES256"],
                audience=ISSUER,
                issuer=self.team_id,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return False
        return header.get("kid") == self.key_id and claims.get("sub") == client_id

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not self._client_ok(form):
            return 400, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            code = self.codes.get(form.get("code", ""))
            fresh = code is not None and not code.used and time.time() - code.issued < CODE_LIFETIME_SECONDS
            if code is None or not fresh or code.client_id != form["client_id"]:
                return 400, {"error": "invalid_grant"}
            code.used = True
            refresh_token = "r" + secrets.token_hex(24)
            self.refresh_tokens[refresh_token] = {"sub": code.sub, "client_id": code.client_id}
        return 200, {
            "access_token": "a" + secrets.token_hex(16),
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": refresh_token,
            "id_token": self.id_token(code.sub, code.client_id, email=code.email),
        }

    def revoke(self, form: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        if not self._client_ok(form):
            return 400, {"error": "invalid_client"}
        with self._lock:
            if self.revoke_failures > 0:
                self.revoke_failures -= 1
                return 503, None
            held = self.refresh_tokens.get(form.get("token", ""))
            if held is not None and held["client_id"] == form["client_id"]:
                # "Invalidate the tokens and associated user authorizations": every token of
                # this user for this client goes, not only the one sent.
                for token, other in self.refresh_tokens.items():
                    if other == held and token not in self.revoked:
                        self.revoked.append(token)
        return 200, None

    def dev_authorize(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        sub, client_id = str(body.get("sub") or uuid.uuid4().hex), str(body.get("client_id") or "")
        if not client_id:
            return 400, {"error": "client_id is required"}
        id_token, code = self.authorize(sub, client_id, body.get("nonce_hash"), body.get("email"))
        return 200, {"id_token": id_token, "authorization_code": code, "sub": sub}


def _handler(stand_in: AppleStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict[str, Any] | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/auth/keys":
                self._reply(200, stand_in.jwks())
            else:
                self._reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/_dev/authorize":
                try:
                    self._reply(*stand_in.dev_authorize(json.loads(raw or b"{}")))
                except ValueError:
                    self._reply(400, {"error": "invalid_request"})
                return
            form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
            stand_in.requests.append((self.path, form))
            if self.path == "/auth/token":
                self._reply(*stand_in.token(form))
            elif self.path == "/auth/revoke":
                self._reply(*stand_in.revoke(form))
            else:
                self._reply(404, {"error": "not_found"})

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
