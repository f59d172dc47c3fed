"""Logout by refresh token (an expired access token does not block it), the device's push token
removed at logout, a mitra taken offline at logout, and DELETE of a device token."""

from __future__ import annotations

import threading

from shared import devices
from shared.context import AppContext
from tests.support import mirror_state
from tests.support.auth_support import anonymous, bearer, client, otp_sign_in, phone, refresh, seed_mitra
from tests.support.helpers import FakeClock


def _logout(json=None, headers=None):
    return client("auth_logout").post("/api/shared/auth/logout", json=json or {}, headers=headers or {})


def _register(headers, token, who="client"):
    entry = "client_devices_put" if who == "client" else "mitra_devices_put"
    resp = client(entry).put(f"/api/{who}/devices", json={"fcm_token": token, "platform": "android"}, headers=headers)
    assert resp.status_code == 200, resp.json
    return resp


def test_logout_with_the_refresh_token_alone_revokes_the_session(ctx):
    signed = anonymous()
    resp = _logout({"refresh_token": signed["refresh_token"]})
    assert resp.status_code == 204, resp.json
    assert refresh(signed["refresh_token"]).json["error"]["code"] == "SESSION_REVOKED"
    me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(signed["access_token"]))
    assert me.status_code == 401 and me.json["error"]["code"] == "SESSION_REVOKED"
    # Logging out again is no error: the app clears its state either way.
    assert _logout({"refresh_token": signed["refresh_token"]}).status_code == 204


def test_an_expired_access_token_does_not_block_a_logout_by_refresh_token(isolated_ctx: AppContext, clock: FakeClock):
    signed = anonymous()
    clock.advance(isolated_ctx.settings.access_token_ttl_seconds + 60)
    expired = bearer(signed["access_token"])
    assert client("auth_client_me").get("/api/client/auth/me", headers=expired).json["error"]["code"] == "TOKEN_EXPIRED"
    resp = _logout({"refresh_token": signed["refresh_token"]}, headers=expired)
    assert resp.status_code == 204, resp.json
    assert refresh(signed["refresh_token"]).status_code == 401


def test_logout_by_bearer_still_works_and_an_unknown_refresh_token_is_401(ctx):
    signed = anonymous()
    assert _logout(headers=bearer(signed["access_token"])).status_code == 204
    assert refresh(signed["refresh_token"]).json["error"]["code"] == "SESSION_REVOKED"
    unknown = _logout({"refresh_token": "no-such-token"})
    assert unknown.status_code == 401 and unknown.json["error"]["code"] == "REFRESH_TOKEN_INVALID"
    assert _logout().status_code == 401  # neither a bearer nor a refresh token


def test_logout_removes_the_push_token_named_in_the_body(ctx):
    signed = anonymous()
    cid = signed["user"]["id"]
    # A token no session is known for (registered before tokens were tied to sessions).
    devices.upsert(ctx, "customer", cid, f"tok-{cid}", "android")
    devices.upsert(ctx, "customer", cid, f"other-{cid}", "android")
    resp = _logout({"refresh_token": signed["refresh_token"], "fcm_token": f"tok-{cid}"})
    assert resp.status_code == 204, resp.json
    assert devices.tokens_for(ctx, "customer", [cid]) == {cid: [f"other-{cid}"]}


def test_logout_removes_the_push_tokens_registered_by_the_session_and_no_other(ctx):
    first = anonymous()
    cid, h1 = first["user"]["id"], bearer(first["access_token"])
    _register(h1, f"phone-{cid}")
    # The same customer on a second install (a second session): its token must stay.
    second = refresh(first["refresh_token"]).json  # a rotation keeps the session
    assert second["user"]["id"] == cid
    with ctx.db.transaction() as tx:
        from shared.auth import refresh as refresh_service

        other = refresh_service.start_session(ctx, tx, "customer", cid)
        tx.commit()
    _register(bearer(other.access_token), f"tablet-{cid}")
    assert _logout({"refresh_token": second["refresh_token"]}).status_code == 204
    assert devices.tokens_for(ctx, "customer", [cid]) == {cid: [f"tablet-{cid}"]}


def test_a_mitra_who_logs_out_goes_offline_in_postgres_and_the_mirror(isolated_ctx: AppContext):
    ctx = isolated_ctx
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    signed = otp_sign_in("mitra", number)
    assert signed.status_code == 200, signed.json
    headers = bearer(signed.json["access_token"])
    assert client("mitra_status_online").post("/api/mitra/status/online", headers=headers).status_code == 200
    _register(headers, f"mitra-phone-{mitra_id}", who="mitra")
    assert mirror_state.actual(ctx)["available"] == {mitra_id}

    resp = _logout({"refresh_token": signed.json["refresh_token"]})
    assert resp.status_code == 204, resp.json
    assert ctx.db.scalar("SELECT is_online FROM mitras WHERE id = CAST(:m AS uuid)", m=mitra_id) is False
    assert mirror_state.actual(ctx)["available"] == set()
    assert mirror_state.actual(ctx) == mirror_state.expected(ctx)
    assert devices.tokens_for(ctx, "mitra", [mitra_id]) == {}
    logged = ctx.db.rows("SELECT event, actor FROM mitra_status_logs WHERE mitra_id = CAST(:m AS uuid)", m=mitra_id)
    assert [(r["event"], r["actor"]) for r in logged][-1] == ("offline", f"mitra:{mitra_id}")


def test_a_customer_deletes_one_device_token(ctx):
    signed = anonymous()
    cid, headers = signed["user"]["id"], bearer(signed["access_token"])
    _register(headers, f"a-{cid}")
    _register(headers, f"b-{cid}")
    resp = client("client_devices_delete").delete(
        "/api/client/devices", json={"fcm_token": f"a-{cid}"}, headers=headers
    )
    assert resp.status_code == 204, resp.json
    assert devices.tokens_for(ctx, "customer", [cid]) == {cid: [f"b-{cid}"]}
    # Deleting it again, or a token of someone else, changes nothing and is no error.
    stranger = anonymous()
    _register(bearer(stranger["access_token"]), f"s-{cid}")
    again = client("client_devices_delete").delete(
        "/api/client/devices", json={"fcm_token": f"s-{cid}"}, headers=headers
    )
    assert again.status_code == 204
    assert devices.tokens_for(ctx, "customer", [stranger["user"]["id"]]) == {stranger["user"]["id"]: [f"s-{cid}"]}
    missing = client("client_devices_delete").delete("/api/client/devices", json={}, headers=headers)
    assert missing.status_code == 400 and missing.json["error"]["field"] == "fcm_token"


def test_a_mitra_deletes_its_device_token(isolated_ctx: AppContext):
    ctx = isolated_ctx
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    headers = bearer(otp_sign_in("mitra", number).json["access_token"])
    _register(headers, f"m-{mitra_id}", who="mitra")
    resp = client("mitra_devices_delete").delete(
        "/api/mitra/devices", json={"fcm_token": f"m-{mitra_id}"}, headers=headers
    )
    assert resp.status_code == 204, resp.json
    assert devices.tokens_for(ctx, "mitra", [mitra_id]) == {}


# ---- every device, and the list of one's sessions ---------------------------------------------


def _second_session(ctx, user_type, user_id, user_agent):
    from shared.auth import refresh as refresh_service

    with ctx.db.transaction() as tx:
        issued = refresh_service.start_session(ctx, tx, user_type, user_id, user_agent=user_agent)
        tx.commit()
    return issued


def test_logout_all_revokes_every_session_with_their_mirror_marks_and_forgets_every_device(ctx):
    phone_app = anonymous({"User-Agent": "BestieApp/2.0 (Android 14)"})
    cid, h1 = phone_app["user"]["id"], bearer(phone_app["access_token"])
    tablet = _second_session(ctx, "customer", cid, "BestieApp/2.0 (iPadOS 18)")
    _register(h1, f"phone-{cid}")
    _register(bearer(tablet.access_token), f"tablet-{cid}")
    stranger = anonymous()

    resp = client("auth_logout_all").post("/api/shared/auth/logout-all", headers=h1)
    assert resp.status_code == 200, resp.json
    assert resp.json == {"revoked_sessions": 2, "removed_devices": 2}
    for token in (phone_app["refresh_token"], tablet.refresh_token):
        assert refresh(token).json["error"]["code"] == "SESSION_REVOKED"
    for sid in (
        tablet.session_id,
        ctx.db.scalar(
            "SELECT id FROM auth_sessions WHERE user_id = CAST(:u AS uuid) AND id <> CAST(:t AS uuid)",
            u=cid,
            t=tablet.session_id,
        ),
    ):
        assert ctx.valkey.exists(ctx.keys.revoked(str(sid))) == 1  # written through the revocation path
    assert devices.tokens_for(ctx, "customer", [cid]) == {}
    assert refresh(stranger["refresh_token"]).status_code == 200  # nobody else is touched


def test_logout_all_takes_a_mitra_offline(isolated_ctx: AppContext):
    ctx = isolated_ctx
    number = phone()
    mitra_id = seed_mitra(ctx, number)
    headers = bearer(otp_sign_in("mitra", number).json["access_token"])
    assert client("mitra_status_online").post("/api/mitra/status/online", headers=headers).status_code == 200
    assert client("auth_logout_all").post("/api/shared/auth/logout-all", headers=headers).status_code == 200
    assert ctx.db.scalar("SELECT is_online FROM mitras WHERE id = CAST(:m AS uuid)", m=mitra_id) is False
    assert mirror_state.actual(ctx)["available"] == set()


def test_the_session_list_shows_each_live_device_and_marks_the_current_one(ctx):
    signed = anonymous({"User-Agent": "BestieApp/2.0 (Android 14)"})
    cid, headers = signed["user"]["id"], bearer(signed["access_token"])
    tablet = _second_session(ctx, "customer", cid, "BestieApp/2.0 (iPadOS 18)")
    gone = _second_session(ctx, "customer", cid, "old phone")
    assert _logout({"refresh_token": gone.refresh_token}).status_code == 204
    anonymous()  # someone else's session is never listed

    resp = client("auth_sessions").get("/api/shared/auth/sessions", headers=headers)
    assert resp.status_code == 200, resp.json
    listed = {s["id"]: s for s in resp.json["sessions"]}
    assert set(listed) == {signed_sid(ctx, signed), tablet.session_id}
    mine = listed[signed_sid(ctx, signed)]
    assert mine["current"] is True and mine["device"] == "BestieApp/2.0 (Android 14)"
    assert listed[tablet.session_id]["current"] is False
    assert listed[tablet.session_id]["device"] == "BestieApp/2.0 (iPadOS 18)"
    assert {"created_at", "last_used_at", "expires_at"} <= set(mine)
    assert client("auth_sessions").get("/api/shared/auth/sessions").status_code == 401


def signed_sid(ctx, signed):
    from shared.auth.tokens import decode_access

    return decode_access(ctx.settings, signed["access_token"], ctx.now()).session_id


# ---- races ----------------------------------------------------------------------------------


def _logout_and_refreshes_at_once(refresh_token: str, refreshes: int) -> list[tuple[str, int, dict]]:
    """One logout and `refreshes` refreshes of the same refresh token, released together."""
    barrier = threading.Barrier(refreshes + 1)
    answers: list[tuple[str, int, dict]] = []
    lock = threading.Lock()

    def call_once(kind: str) -> None:
        c = client("auth_logout" if kind == "logout" else "auth_refresh")
        barrier.wait()
        resp = c.post(f"/api/shared/auth/{kind}", json={"refresh_token": refresh_token})
        with lock:
            answers.append((kind, resp.status_code, resp.json or {}))

    threads = [threading.Thread(target=call_once, args=(k,)) for k in ("logout", *["refresh"] * refreshes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_a_logout_racing_refreshes_of_its_token_leaves_no_live_token(ctx):
    """Whichever order Postgres picks, the session ends revoked and no token a refresh handed out works."""
    for _ in range(5):
        signed = anonymous()
        answers = _logout_and_refreshes_at_once(signed["refresh_token"], 3)
        assert len(answers) == 4
        assert [status for kind, status, _ in answers if kind == "logout"] == [204]
        assert all(status in (200, 401) for kind, status, _ in answers if kind == "refresh"), answers
        for kind, status, body in answers:
            if kind == "refresh" and status == 200:
                assert refresh(body["refresh_token"]).status_code == 401
                me = client("auth_client_me").get("/api/client/auth/me", headers=bearer(body["access_token"]))
                assert me.status_code == 401
        live = ctx.db.scalar(
            "SELECT count(*) FROM auth_sessions WHERE user_id = CAST(:u AS uuid) AND revoked_at IS NULL",
            u=signed["user"]["id"],
        )
        assert live == 0
