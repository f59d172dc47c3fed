"""Server-issued sign-in nonces: Apple needs one, each works once, for the caller it was issued to."""

from __future__ import annotations

import threading
import time
import uuid

from shared.auth.nonces import NONCE_TTL_SECONDS
from tests.support.auth_support import (
    GOOGLE_CLIENT,
    RsaKey,
    anonymous,
    apple_body,
    apple_sign_in,
    bearer,
    client,
    identity_providers,
    post_apple,
    sign_in_nonce,
)


def _sessions_of(app_ctx, user_id: str) -> int:
    return int(app_ctx.db.scalar("SELECT count(*) FROM auth_sessions WHERE user_id = CAST(:u AS uuid)", u=user_id))


def test_apple_sign_in_without_a_nonce_is_refused(providers, keys):
    body = apple_body(keys[1], uuid.uuid4().hex, "some-nonce")
    del body["nonce"]  # the token carries one, the request does not
    resp = post_apple(body)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "NONCE_INVALID"


def test_a_captured_apple_sign_in_replayed_is_refused(providers, keys):
    app_ctx, _ = providers
    raw = sign_in_nonce()
    captured = apple_body(keys[1], uuid.uuid4().hex, raw)
    first = post_apple(captured)
    assert first.status_code == 200, first.json
    replay = post_apple(captured)
    assert replay.status_code == 401 and replay.json["error"]["code"] == "NONCE_INVALID"
    assert _sessions_of(app_ctx, first.json["user"]["id"]) == 1


def test_a_nonce_the_server_never_issued_is_refused(providers, keys):
    raw = uuid.uuid4().hex  # chosen by the app (or an attacker), not by the server
    resp = post_apple(apple_body(keys[1], uuid.uuid4().hex, raw))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "NONCE_INVALID"


def test_an_expired_nonce_is_refused(providers, keys):
    app_ctx, _ = providers
    raw = sign_in_nonce()
    keys_with_nonces = list(app_ctx.valkey.scan_iter(match=f"{app_ctx.settings.valkey_prefix}nonce:*"))
    assert len(keys_with_nonces) == 1 and 0 < app_ctx.valkey.ttl(keys_with_nonces[0]) <= NONCE_TTL_SECONDS
    app_ctx.valkey.pexpire(keys_with_nonces[0], 1)  # Valkey's own expiry, 5 minutes early
    time.sleep(0.05)
    resp = post_apple(apple_body(keys[1], uuid.uuid4().hex, raw))
    assert resp.status_code == 401 and resp.json["error"]["code"] == "NONCE_INVALID"


def test_a_nonce_issued_to_another_ip_is_refused(providers, keys):
    raw = sign_in_nonce({"X-Forwarded-For": "198.51.100.1"})
    resp = post_apple(
        apple_body(keys[1], uuid.uuid4().hex, raw),
        {"X-Forwarded-For": "198.51.100.2"},
    )
    assert resp.status_code == 401 and resp.json["error"]["code"] == "NONCE_INVALID"


def test_a_nonce_issued_to_an_anonymous_session_serves_only_that_session(providers, keys):
    anon = anonymous()
    raw = sign_in_nonce(bearer(anon["access_token"]))
    without_bearer = post_apple(apple_body(keys[1], uuid.uuid4().hex, raw))
    assert without_bearer.status_code == 401 and without_bearer.json["error"]["code"] == "NONCE_INVALID"
    linked = apple_sign_in(keys[1], uuid.uuid4().hex, bearer(anon["access_token"]))
    assert linked.status_code == 200 and linked.json["user"]["id"] == anon["user"]["id"]


def test_two_sign_ins_racing_with_one_nonce_open_one_session(providers, keys):
    raw = sign_in_nonce()
    body = apple_body(keys[1], uuid.uuid4().hex, raw)
    gate = threading.Barrier(4)
    statuses: list[int] = []

    def race() -> None:
        gate.wait()
        statuses.append(post_apple(body).status_code)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 401, 401, 401]


def test_nonces_are_neither_issued_nor_accepted_while_valkey_is_down(keys):
    with identity_providers(*keys, valkey_url="redis://127.0.0.1:1/0", valkey_timeout_seconds=0.2):
        issued = client("auth_nonce").post("/api/shared/auth/nonce")
        assert issued.status_code == 503 and issued.json["error"]["code"] == "NONCE_STORE_UNAVAILABLE"
        raw = uuid.uuid4().hex
        resp = post_apple(apple_body(keys[1], uuid.uuid4().hex, raw))
        assert resp.status_code == 503 and resp.json["error"]["code"] == "NONCE_STORE_UNAVAILABLE"


def _google_token(key: RsaKey, sub: str, **claims) -> str:
    return key.sign({"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT, "sub": sub, **claims})


def test_a_google_sign_in_that_sends_a_nonce_uses_it_up(providers, keys):
    raw = sign_in_nonce()
    body = {"id_token": _google_token(keys[0], uuid.uuid4().hex, nonce=raw), "nonce": raw}
    first = client("auth_client_google").post("/api/client/auth/google", json=body)
    assert first.status_code == 200, first.json
    replay = client("auth_client_google").post("/api/client/auth/google", json=body)
    assert replay.status_code == 401 and replay.json["error"]["code"] == "NONCE_INVALID"


def test_a_google_token_carrying_another_nonce_is_refused(providers, keys):
    raw = sign_in_nonce()
    body = {"id_token": _google_token(keys[0], uuid.uuid4().hex, nonce="not-" + raw), "nonce": raw}
    resp = client("auth_client_google").post("/api/client/auth/google", json=body)
    assert resp.status_code == 401 and resp.json["error"]["code"] == "NONCE_MISMATCH"
