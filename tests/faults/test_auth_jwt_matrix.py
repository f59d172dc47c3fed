"""The JWT attack matrix: every forged, stale or revoked token is refused, whatever Valkey's state.

Modes: Valkey up with a seeded mirror (revocation answered by `{avail}:revoked:<sid>`),
Valkey stopped (Postgres fallback), and Valkey after FLUSHALL (the `seeded` marker is gone,
so the guard falls back to Postgres: revocations survive Valkey data loss).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time

import jwt
import pytest

from shared.auth import revocation, tokens
from shared.context import AppContext
from tests.conftest import make_context
from tests.support.auth_support import anonymous, bearer, client, otp_sign_in, phone, seed_mitra
from tests.support.helpers import installed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict, claims: dict, key: bytes | None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = _b64(hmac.new(key, head.encode(), hashlib.sha256).digest()) if key else ""
    return head + "." + sig


def _claims(ctx: AppContext, customer: dict, **overrides) -> dict:
    now = int(time.time())
    base = {
        "sub": customer["user"]["id"],
        "user_type": "customer",
        "sid": jwt.decode(customer["access_token"], options={"verify_signature": False})["sid"],
        "iat": now,
        "exp": now + 600,
        "iss": ctx.settings.auth_jwt_issuer,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _attacks(ctx: AppContext, customer: dict) -> dict[str, str]:
    secret = ctx.settings.auth_jwt_secret.encode()
    kid = tokens.key_id(ctx.settings.auth_jwt_secret)
    good_header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    return {
        "alg_none": _forge({"alg": "none", "typ": "JWT", "kid": kid}, _claims(ctx, customer), None),
        "wrong_key": jwt.encode(
            _claims(ctx, customer), "another-secret-" + "z" * 40, algorithm="HS256", headers={"kid": kid}
        ),
        "rs256_confusion": _forge({"alg": "RS256", "typ": "JWT", "kid": kid}, _claims(ctx, customer), secret),
        "expired": _forge(
            good_header, _claims(ctx, customer, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), secret
        ),
        "missing_exp": _forge(good_header, _claims(ctx, customer, exp=None), secret),
        "wrong_iss": _forge(good_header, _claims(ctx, customer, iss="someone-else"), secret),
        "garbage": "not.a.jwt",
    }


@pytest.fixture
def valkey_ctx(own_valkey):
    """A context on a Valkey of this test's own, seeded as a complete mirror seed leaves it."""
    settings = dataclasses.replace(make_context().settings, valkey_url=own_valkey.url)
    with installed(AppContext(settings)) as app_ctx:
        app_ctx.valkey.set(app_ctx.keys.seeded, "1")
        yield app_ctx


@pytest.fixture(params=["valkey_up", "valkey_stopped", "valkey_flushed"])
def mode(request, valkey_ctx, own_valkey):
    return request.param, valkey_ctx, own_valkey


def _apply(mode_name: str, server) -> None:
    if mode_name == "valkey_stopped":
        server.stop()
    elif mode_name == "valkey_flushed":
        import redis

        redis.Redis.from_url(server.url).flushall()


def test_attack_matrix_is_refused_in_every_valkey_state(mode):
    mode_name, app_ctx, server = mode
    customer = anonymous()
    revoked = anonymous()
    out = client("auth_logout").post("/api/shared/auth/logout", headers=bearer(revoked["access_token"]))
    assert out.status_code == 204
    assert app_ctx.valkey.exists(
        app_ctx.keys.revoked(jwt.decode(revoked["access_token"], options={"verify_signature": False})["sid"])
    )
    attacks = _attacks(app_ctx, customer)
    _apply(mode_name, server)
    me = client("auth_client_me")
    for name, token in attacks.items():
        resp = me.get("/api/client/auth/me", headers=bearer(token))
        assert resp.status_code == 401, (mode_name, name, resp.json)
        assert resp.json["error"]["code"] in ("TOKEN_INVALID", "TOKEN_EXPIRED"), name
    gone = me.get("/api/client/auth/me", headers=bearer(revoked["access_token"]))
    assert gone.status_code == 401 and gone.json["error"]["code"] == "SESSION_REVOKED", mode_name
    # The legitimate token keeps working (answered from Postgres when Valkey cannot answer).
    assert me.get("/api/client/auth/me", headers=bearer(customer["access_token"])).status_code == 200
    wrong_type = client("auth_mitra_me").get("/api/mitra/auth/me", headers=bearer(customer["access_token"]))
    assert wrong_type.status_code == 403 and wrong_type.json["error"]["code"] == "WRONG_USER_TYPE"


def test_revocation_made_while_valkey_is_down_still_holds(valkey_ctx, own_valkey):
    customer = anonymous()
    own_valkey.stop()
    out = client("auth_logout").post("/api/shared/auth/logout", headers=bearer(customer["access_token"]))
    assert out.status_code == 204  # Postgres is the truth; the mirror write failure is swallowed
    resp = client("auth_client_me").get("/api/client/auth/me", headers=bearer(customer["access_token"]))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "SESSION_REVOKED"


def test_revoked_mitra_token_is_refused_after_flushall(valkey_ctx, own_valkey):
    app_ctx = valkey_ctx
    number = phone()
    seed_mitra(app_ctx, number)
    signed_in = otp_sign_in("mitra", number).json
    with app_ctx.db.transaction() as tx:
        revocation.take_access_away(
            app_ctx, tx, reason="deactivated", user_type="mitra", user_id=signed_in["user"]["id"]
        )
        tx.commit()
    _apply("valkey_flushed", own_valkey)
    resp = client("auth_mitra_me").get("/api/mitra/auth/me", headers=bearer(signed_in["access_token"]))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "SESSION_REVOKED"


def test_seeded_valkey_answers_revocation_without_postgres(ctx):
    """The mirror key alone revokes: proof the fast path is the Valkey key, not a Postgres read."""
    customer = anonymous()
    sid = jwt.decode(customer["access_token"], options={"verify_signature": False})["sid"]
    ctx.valkey.set(ctx.keys.seeded, "1")
    ctx.valkey.set(ctx.keys.revoked(sid), "1", ex=60)
    resp = client("auth_client_me").get("/api/client/auth/me", headers=bearer(customer["access_token"]))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "SESSION_REVOKED"
    assert ctx.db.scalar("SELECT revoked_at FROM auth_sessions WHERE id = CAST(:s AS uuid)", s=sid) is None


def test_tokens_signed_with_a_previous_secret_still_verify_after_rotation(ctx):
    customer = anonymous()
    rotated = dataclasses.replace(
        ctx.settings,
        auth_jwt_secret="new-secret-" + "n" * 40,
        auth_jwt_previous_secrets=(ctx.settings.auth_jwt_secret,),
    )
    principal = tokens.decode_access(rotated, customer["access_token"], ctx.now())
    assert principal.user_id == customer["user"]["id"]
    assert principal.session_id == jwt.decode(customer["access_token"], options={"verify_signature": False})["sid"]
    dropped = dataclasses.replace(rotated, auth_jwt_previous_secrets=())
    with pytest.raises(Exception, match="known key"):
        tokens.decode_access(dropped, customer["access_token"], ctx.now())
