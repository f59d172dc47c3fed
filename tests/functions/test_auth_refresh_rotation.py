"""Refresh tokens through the real entry points: rotation, reuse detection, grace, concurrency."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import make_context
from tests.support.auth_support import anonymous, bearer, client, refresh
from tests.support.helpers import installed


def _me(access_token: str) -> int:
    return client("auth_client_me").get("/api/client/auth/me", headers=bearer(access_token)).status_code


def test_each_refresh_rotates_the_pair(ctx):
    first = anonymous()
    second = refresh(first["refresh_token"])
    assert second.status_code == 200
    body = second.json
    assert body["refresh_token"] != first["refresh_token"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["user"] == first["user"]  # the full profile, as sign-in gives it
    assert _me(body["access_token"]) == 200


def test_replaying_a_superseded_token_revokes_the_whole_session(ctx):
    tokens = [anonymous()]
    for _ in range(3):
        resp = refresh(tokens[-1]["refresh_token"])
        assert resp.status_code == 200
        tokens.append(resp.json)
    replay = refresh(tokens[0]["refresh_token"])
    assert replay.status_code == 401
    assert replay.json["error"]["code"] == "REFRESH_TOKEN_REUSED"
    newest = refresh(tokens[-1]["refresh_token"])
    assert newest.status_code == 401 and newest.json["error"]["code"] == "SESSION_REVOKED"
    assert [_me(t["access_token"]) for t in tokens] == [401] * 4
    sid = ctx.db.scalar("SELECT id FROM auth_sessions WHERE user_id = CAST(:u AS uuid)", u=tokens[0]["user"]["id"])
    assert ctx.db.scalar("SELECT revoked_reason FROM auth_sessions WHERE id = :s", s=sid) == "refresh_token_reused"
    assert ctx.valkey.exists(ctx.keys.revoked(str(sid))) == 1


@pytest.fixture
def clocked(clock):
    with installed(make_context(clock)) as app_ctx:
        yield app_ctx


def test_parent_replayed_within_grace_returns_the_current_child(clocked, clock):
    start = anonymous()
    child = refresh(start["refresh_token"]).json
    clock.advance(9)
    again = refresh(start["refresh_token"])
    assert again.status_code == 200
    assert again.json["refresh_token"] == child["refresh_token"]
    rows = clocked.db.scalar(
        "SELECT count(*) FROM refresh_tokens rt JOIN auth_sessions s ON s.id = rt.session_id"
        " WHERE s.user_id = CAST(:u AS uuid)",
        u=start["user"]["id"],
    )
    assert rows == 2  # the original and its one child: no fork
    assert refresh(child["refresh_token"]).status_code == 200  # the child is still current and usable


def test_parent_replayed_after_grace_is_reuse(clocked, clock):
    start = anonymous()
    child = refresh(start["refresh_token"]).json
    clock.advance(11)
    replay = refresh(start["refresh_token"])
    assert replay.status_code == 401 and replay.json["error"]["code"] == "REFRESH_TOKEN_REUSED"
    assert refresh(child["refresh_token"]).status_code == 401


def test_grandparent_within_grace_is_still_reuse(clocked, clock):
    start = anonymous()
    child = refresh(start["refresh_token"]).json
    refresh(child["refresh_token"])
    replay = refresh(start["refresh_token"])
    assert replay.status_code == 401 and replay.json["error"]["code"] == "REFRESH_TOKEN_REUSED"


def test_twenty_concurrent_refreshes_of_one_token_make_no_fork_and_no_5xx(ctx):
    start = anonymous()
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def worker() -> None:
        c = client("auth_refresh")
        barrier.wait()
        resp = c.post("/api/shared/auth/refresh", json={"refresh_token": start["refresh_token"]})
        with lock:
            results.append((resp.status_code, (resp.json or {}).get("refresh_token")))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 20
    assert {status for status, _ in results} == {200}
    assert len({token for _, token in results}) == 1
    count = ctx.db.scalar(
        "SELECT count(*) FROM refresh_tokens rt JOIN auth_sessions s ON s.id = rt.session_id"
        " WHERE s.user_id = CAST(:u AS uuid)",
        u=start["user"]["id"],
    )
    assert count == 2


def test_unknown_or_malformed_refresh_tokens_are_401_or_400(ctx):
    unknown = refresh("x" * 43)
    assert unknown.status_code == 401 and unknown.json["error"]["code"] == "REFRESH_TOKEN_INVALID"
    missing = client("auth_refresh").post("/api/shared/auth/refresh", json={})
    assert missing.status_code == 400 and missing.json["error"]["field"] == "refresh_token"
    wrong_type = client("auth_refresh").post("/api/shared/auth/refresh", json={"refresh_token": 5})
    assert wrong_type.status_code == 400


def test_session_past_its_absolute_expiry_cannot_refresh(clocked, clock):
    start = anonymous()
    clock.advance(31 * 86400)
    resp = refresh(start["refresh_token"])
    assert resp.status_code == 401 and resp.json["error"]["code"] == "REFRESH_TOKEN_EXPIRED"


def test_logout_revokes_the_session_at_once(ctx):
    start = anonymous()
    out = client("auth_logout").post("/api/shared/auth/logout", headers=bearer(start["access_token"]))
    assert out.status_code == 204
    assert _me(start["access_token"]) == 401
    assert refresh(start["refresh_token"]).json["error"]["code"] == "SESSION_REVOKED"
