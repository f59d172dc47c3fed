"""Apple's token endpoints (the adapter): code exchange, revocation, and the refresh-token cipher.

- Client secret: a JWT signed ES256 with the team's Sign in with Apple key (APPLE_PRIVATE_KEY,
  key id APPLE_KEY_ID), `iss` = APPLE_TEAM_ID, `sub` = the client id the code was issued to,
  `aud` = https://appleid.apple.com, valid for 5 minutes (Apple allows up to six months),
  https://developer.apple.com/documentation/accountorganizationaldatasharing/creating-a-client-secret
- Code exchange: `POST APPLE_TOKEN_URL` (form: client_id, client_secret, code,
  grant_type=authorization_code) answers {access_token, refresh_token, id_token, ...},
  https://developer.apple.com/documentation/sign_in_with_apple/generate_and_validate_tokens
- Revocation: `POST APPLE_REVOKE_URL` (form: client_id, client_secret, token,
  token_type_hint=refresh_token) answers 200 with an empty body,
  https://developer.apple.com/documentation/sign_in_with_apple/revoke_tokens
- The refresh token is kept only encrypted: AES-256-GCM (`cryptography`) with the key of
  APPLE_TOKEN_ENCRYPTION_KEY (base64 of 32 bytes), a random 96-bit nonce per token, the client
  id as associated data; stored as version byte 1 || nonce || ciphertext+tag.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.context import AppContext
from shared.errors import BadGateway, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

APPLE_AUDIENCE = "https://appleid.apple.com"
TIMEOUT_SECONDS = 5.0
SECRET_LIFETIME_SECONDS = 300
_VERSION = b"\x01"


@dataclass(frozen=True)
class Grant:
    """What a code exchange gives the server: the refresh token (to revoke later) and whose it is."""

    client_id: str
    refresh_token: str
    subject: str


def configured(ctx: AppContext) -> bool:
    s = ctx.settings
    return bool(s.apple_team_id and s.apple_key_id and s.apple_private_key and s.apple_token_encryption_key)


def require_configured(ctx: AppContext) -> None:
    """503 PROVIDER_NOT_CONFIGURED unless the client secret and the token key are set."""
    if not configured(ctx):
        raise ServiceUnavailable("Sign in with Apple is not configured", code="PROVIDER_NOT_CONFIGURED")


def client_secret(ctx: AppContext, client_id: str) -> str:
    """The ES256 client secret for `client_id`, signed with the team's key."""
    s = ctx.settings
    now = int(time.time())
    claims = {
        "iss": s.apple_team_id,
        "iat": now,
        "exp": now + SECRET_LIFETIME_SECONDS,
        "aud": APPLE_AUDIENCE,
        "sub": client_id,
    }
    return jwt.encode(claims, s.apple_private_key or "", algorithm="ES256", headers={"kid": s.apple_key_id})


def _post(ctx: AppContext, url: str, form: dict[str, str]) -> requests.Response:
    try:
        return requests.post(url, data=form, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        log.warning("apple token endpoint unreachable", extra={"error": type(exc).__name__})
        raise BadGateway("Apple's token endpoint did not answer", code="IDENTITY_PROVIDER_ERROR") from None


def exchange_code(ctx: AppContext, code: str, client_id: str, subject: str) -> Grant:
    """Exchange the authorization code sent with the id_token; the grant must be the same user's.

    401 APPLE_CODE_INVALID when Apple refuses the code (`invalid_grant`: used, expired, another
    client's) or its id_token names another user; 502 IDENTITY_PROVIDER_ERROR when Apple fails,
    does not answer, or refuses the client secret (a configuration error, logged).
    """
    form = {
        "client_id": client_id,
        "client_secret": client_secret(ctx, client_id),
        "code": code,
        "grant_type": "authorization_code",
    }
    resp = _post(ctx, ctx.settings.apple_token_url, form)
    body = _json(resp)
    if resp.status_code == 400 and body.get("error") == "invalid_grant":
        raise Unauthorized("Apple refused the authorization code", code="APPLE_CODE_INVALID")
    if 400 <= resp.status_code < 500:  # invalid_client & co: our settings are wrong, not the app
        log.error("apple refused the client", extra={"status": resp.status_code, "error": str(body.get("error"))})
        raise BadGateway("Apple refused this server's client secret", code="IDENTITY_PROVIDER_ERROR")
    refresh_token, id_token = body.get("refresh_token"), body.get("id_token")
    if resp.status_code != 200 or not isinstance(refresh_token, str) or not isinstance(id_token, str):
        log.warning("apple token endpoint failed", extra={"status": resp.status_code})
        raise BadGateway("Apple's token endpoint failed", code="IDENTITY_PROVIDER_ERROR")
    # This id_token came straight from Apple over TLS, so its signature need not be checked
    # (OpenID Connect Core 3.1.3.7); it only has to name the user the app's id_token named.
    try:
        granted: dict[str, Any] = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise BadGateway(
            "Apple's token endpoint answered an unreadable id_token", code="IDENTITY_PROVIDER_ERROR"
        ) from None
    if granted.get("sub") != subject:
        raise Unauthorized("the authorization code belongs to another Apple user", code="APPLE_CODE_INVALID")
    return Grant(client_id, refresh_token, subject)


def revoke(ctx: AppContext, client_id: str, refresh_token: str) -> bool:
    """Revoke a refresh token at Apple; True once Apple confirmed it (never raises)."""
    if not configured(ctx):
        return False
    form = {
        "client_id": client_id,
        "client_secret": client_secret(ctx, client_id),
        "token": refresh_token,
        "token_type_hint": "refresh_token",
    }
    try:
        resp = _post(ctx, ctx.settings.apple_revoke_url, form)
    except BadGateway:
        return False
    if resp.status_code != 200:
        log.warning("apple revoke failed", extra={"status": resp.status_code})
    return resp.status_code == 200


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _cipher(ctx: AppContext) -> AESGCM:
    try:
        key = base64.b64decode(ctx.settings.apple_token_encryption_key or "", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ServiceUnavailable("APPLE_TOKEN_ENCRYPTION_KEY is not base64 of 32 bytes", code="PROVIDER_NOT_CONFIGURED")
    return AESGCM(key)


def seal(ctx: AppContext, client_id: str, refresh_token: str) -> bytes:
    """The refresh token encrypted for storage (AES-256-GCM, the client id as associated data)."""
    nonce = os.urandom(12)
    return _VERSION + nonce + _cipher(ctx).encrypt(nonce, refresh_token.encode(), client_id.encode())


def unseal(ctx: AppContext, client_id: str, sealed: bytes) -> str:
    """The stored refresh token in clear; ValueError when it was not sealed with this key."""
    data = bytes(sealed)
    if data[:1] != _VERSION:
        raise ValueError("unknown sealed-token version")
    try:
        return _cipher(ctx).decrypt(data[1:13], data[13:], client_id.encode()).decode()
    except InvalidTag:
        raise ValueError("the sealed token does not open with this key") from None
