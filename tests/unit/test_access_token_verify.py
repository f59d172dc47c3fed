"""The stdlib HS256 verifier of access tokens against tokens PyJWT signs, and every way to forge one."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime

import jwt
import pytest

from shared.auth import tokens
from shared.auth.principal import Principal
from shared.config import Settings
from shared.errors import Unauthorized

SECRET = "unit-" + "k" * 40
OLD = "old-" + "o" * 40
SETTINGS = dataclasses.replace(Settings.from_env(), auth_jwt_secret=SECRET, auth_jwt_previous_secrets=(OLD,))
PRINCIPAL = Principal(user_type="mitra", user_id=str(uuid.uuid4()), session_id=str(uuid.uuid4()), role=None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: object) -> dict:
    now = int(time.time())
    claims = {
        "sub": PRINCIPAL.user_id,
        "user_type": "mitra",
        "sid": PRINCIPAL.session_id,
        "iat": now,
        "exp": now + 600,
        "iss": SETTINGS.auth_jwt_issuer,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _forge(claims: dict, *, secret: str = SECRET, **header: object) -> str:
    head = {"alg": "HS256", "typ": "JWT", "kid": tokens.key_id(secret), **header}
    signing = _b64(json.dumps(head).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + _b64(sig)


def _code(token: str) -> str:
    with pytest.raises(Unauthorized) as refused:
        tokens.decode_access(SETTINGS, token, datetime.now(UTC))
    return str(refused.value.code)


def test_a_token_signed_by_encode_access_verifies_to_its_principal():
    token = tokens.encode_access(SETTINGS, PRINCIPAL, datetime.now(UTC))
    assert tokens.decode_access(SETTINGS, token, datetime.now(UTC)) == PRINCIPAL


def test_a_token_signed_by_encode_access_is_the_jwt_pyjwt_reads_with_the_same_header_and_claims():
    now = datetime.now(UTC)
    role_principal = PRINCIPAL._replace(user_type="cc", role="admin")
    for principal in (PRINCIPAL, role_principal):
        token = tokens.encode_access(SETTINGS, principal, now)
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "HS256", "typ": "JWT", "kid": tokens.key_id(SECRET)}
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=SETTINGS.auth_jwt_issuer)
        assert (claims["sub"], claims["user_type"], claims["sid"], claims.get("role")) == (
            principal.user_id,
            principal.user_type,
            principal.session_id,
            principal.role,
        )
        assert claims["exp"] - claims["iat"] == SETTINGS.access_token_ttl_seconds
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, OLD, algorithms=["HS256"])


def test_a_token_signed_with_a_previous_secret_verifies():
    assert tokens.decode_access(SETTINGS, _forge(_claims(), secret=OLD), datetime.now(UTC)) == PRINCIPAL


@pytest.mark.parametrize(
    ("name", "make"),  # built when the test runs: a long suite outlives `exp`
    [
        ("alg none", lambda: _forge(_claims(), alg="none").rsplit(".", 1)[0] + "."),
        ("alg HS512", lambda: _forge(_claims(), alg="HS512")),
        ("unknown kid", lambda: _forge(_claims(), kid="0" * 16)),
        ("kid not a string", lambda: _forge(_claims(), kid=7)),
        ("crit header", lambda: _forge(_claims(), crit=["exp"])),
        ("wrong key, right kid", lambda: _forge(_claims(), secret="x" * 45, kid=tokens.key_id(SECRET))),
        ("missing sid", lambda: _forge(_claims(sid=None))),
        ("missing exp", lambda: _forge(_claims(exp=None))),
        ("exp not an integer", lambda: _forge(_claims(exp="9999999999"))),
        ("exp a boolean", lambda: _forge(_claims(exp=True))),
        ("wrong issuer", lambda: _forge(_claims(iss="someone-else"))),
        ("audience present", lambda: _forge(_claims(aud="elsewhere"))),
        ("not yet valid", lambda: _forge(_claims(nbf=int(time.time()) + 3600))),
        ("sub not a uuid", lambda: _forge(_claims(sub="admin"))),
        ("unknown user type", lambda: _forge(_claims(user_type="root"))),
        ("two parts", lambda: "a.b"),
        ("not base64", lambda: "@@@.@@@.@@@"),
        ("payload not an object", lambda: _forge([1, 2])),  # type: ignore[arg-type]
        ("non-ascii", lambda: "é.é.é"),
    ],
)
def test_forged_or_malformed_tokens_are_invalid(name, make):
    assert _code(make()) == "TOKEN_INVALID", name


def test_a_tampered_payload_breaks_the_signature():
    head, _, sig = _forge(_claims()).split(".")
    other = _b64(json.dumps(_claims(user_type="customer")).encode())
    assert _code(f"{head}.{other}.{sig}") == "TOKEN_INVALID"


def test_an_expired_token_is_expired_not_invalid():
    assert _code(_forge(_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 1))) == "TOKEN_EXPIRED"


def test_verification_agrees_with_pyjwt_on_a_valid_token():
    token = _forge(_claims(role="x"))
    assert tokens._verify(SETTINGS, token, tokens._known_secrets(SETTINGS)) == jwt.decode(
        token, SECRET, algorithms=["HS256"], issuer=SETTINGS.auth_jwt_issuer
    )
