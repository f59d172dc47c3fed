"""Staff accounts: role and active flag (admins only, never yourself, never the last admin), unlock,
and the users list showing lockouts."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

from shared.auth.principal import Principal
from shared.cc import staff
from shared.context import AppContext
from shared.errors import Conflict
from tests.support import apps
from tests.support.helpers import FakeClock
from tests.support.tokens import _token, bearer, cc_user

ORIGIN = {"Origin": "https://cc.example.test"}


def _staff(ctx: AppContext, role: str) -> tuple[str, dict[str, str]]:
    """(user id, Authorization header) of a new staff account."""
    user_id, token = cc_user(ctx, role)
    return user_id, bearer(token)


def _patch(user_id: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    return apps.client("cc_users_patch").patch(f"/internal/control-center-users/{user_id}", json=body, headers=headers)


def _unlock(user_id: str, headers: dict[str, str]) -> Any:
    return apps.client("cc_users_unlock").post(f"/internal/control-center-users/{user_id}/unlock", headers=headers)


def _users(headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    resp = apps.client("cc_users_list").get("/internal/control-center-users", headers=headers)
    assert resp.status_code == 200, resp.json
    return {u["id"]: u for u in resp.json["users"]}


def test_an_admin_changes_role_and_deactivation_revokes_the_users_sessions(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    admin_id, admin = _staff(ctx, "admin")
    op_id, operator = _staff(ctx, "operator")

    promoted = _patch(op_id, admin, {"role": "admin"})
    assert promoted.status_code == 200 and promoted.json["role"] == "admin" and promoted.json["revoked_sessions"] == 0
    # The promoted user's existing token (role claim "operator") reaches admin routes: the role is re-read.
    assert apps.client("cc_users_list").get("/internal/control-center-users", headers=operator).status_code == 403
    assert _patch(op_id, admin, {"role": "operator"}).status_code == 200

    off = _patch(op_id, admin, {"is_active": False})
    assert off.status_code == 200 and off.json["is_active"] is False and off.json["revoked_sessions"] == 1
    refused = apps.client("dashboard").get("/internal/dashboard", headers=operator)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "SESSION_REVOKED"
    assert _patch(op_id, admin, {"is_active": True}).json["is_active"] is True

    audit = ctx.db.rows("SELECT actor, action, target_id, detail FROM cc_audit_log ORDER BY id")
    assert [(a["actor"], a["action"], a["target_id"]) for a in audit] == [
        (f"cc:{admin_id}", "cc_user.update", op_id)
    ] * 4
    assert audit[0]["detail"]["role"] == {"from": "operator", "to": "admin"}
    assert (
        audit[2]["detail"]["is_active"] == {"from": True, "to": False} and audit[2]["detail"]["revoked_sessions"] == 1
    )


def test_nobody_changes_their_own_account_and_operators_change_nobody(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    admin_id, admin = _staff(ctx, "admin")
    op_id, operator = _staff(ctx, "operator")

    for body in ({"role": "operator"}, {"is_active": False}, {"role": "admin"}):
        mine = _patch(admin_id, admin, body)
        assert mine.status_code == 403 and mine.json["error"]["code"] == "SELF_CHANGE_FORBIDDEN", body
    own = apps.client("cc_users_reset_password").patch(
        f"/internal/control-center-users/{admin_id}/password", json={"new_password": "Passw0rdNew"}, headers=admin
    )
    assert own.status_code == 403 and own.json["error"]["code"] == "USE_OWN_PASSWORD_ROUTE"
    for resp in (_patch(admin_id, operator, {"is_active": False}), _unlock(admin_id, operator)):
        assert resp.status_code == 403 and resp.json["error"]["code"] == "ADMIN_REQUIRED"
    mitra_like = bearer(_token(ctx, "customer", str(uuid.uuid4()))[0])
    assert _patch(op_id, mitra_like, {"role": "admin"}).json["error"]["code"] == "WRONG_USER_TYPE"
    assert _patch(op_id, {}, {"role": "admin"}).status_code == 401

    for body, field in (({}, "body"), ({"role": "owner"}, "role"), ({"is_active": "no"}, "is_active")):
        bad = _patch(op_id, admin, body)
        assert bad.status_code == 400 and bad.json["error"]["field"] == field, body
    assert _patch("nope", admin, {"role": "admin"}).json["error"]["field"] == "id"
    missing = _patch(str(uuid.uuid4()), admin, {"role": "admin"})
    assert missing.status_code == 404 and missing.json["error"]["code"] == "USER_NOT_FOUND"
    assert _unlock(str(uuid.uuid4()), admin).status_code == 404
    rows = ctx.db.rows("SELECT id, role, is_active FROM control_center_users ORDER BY role")
    assert [(str(r["id"]), r["role"], r["is_active"]) for r in rows] == [
        (admin_id, "admin", True),
        (op_id, "operator", True),
    ]
    assert ctx.db.scalar("SELECT count(*) FROM cc_audit_log") == 0


def test_the_last_active_admin_is_never_demoted_when_two_admins_demote_each_other(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    a_id, _ = _staff(ctx, "admin")
    b_id, _ = _staff(ctx, "admin")
    a, b = Principal("cc", a_id, "sid-a", "admin"), Principal("cc", b_id, "sid-b", "admin")

    # The interleaving of a race: both passed the admin check of the guard, A's change commits first.
    assert staff.update_user(ctx, a, b_id, {"role": "operator"})["role"] == "operator"
    try:
        staff.update_user(ctx, b, a_id, {"is_active": False})
        raise AssertionError("the last active admin was deactivated")
    except Conflict as exc:
        assert exc.code == "LAST_ADMIN"
    admins = ctx.db.rows("SELECT id FROM control_center_users WHERE role = 'admin' AND is_active")
    assert [str(r["id"]) for r in admins] == [a_id]


def test_concurrent_mutual_demotions_over_http_leave_an_active_admin(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    for _ in range(5):
        with ctx.db.transaction() as tx:  # start each round with no admin but the two below
            tx.execute("UPDATE control_center_users SET role = 'operator'")
            tx.commit()
        (a_id, a), (b_id, b) = _staff(ctx, "admin"), _staff(ctx, "admin")
        results: list[int] = []
        barrier = threading.Barrier(2)

        def demote(target: str, headers: dict[str, str], barrier: threading.Barrier, results: list[int]) -> None:
            barrier.wait()
            results.append(_patch(target, headers, {"role": "operator"}).status_code)

        threads = [
            threading.Thread(target=demote, args=(target, headers, barrier, results))
            for target, headers in ((b_id, a), (a_id, b))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # One wins; the other finds itself the last admin (409) or no longer an admin (403).
        assert sorted(results) in ([200, 403], [200, 409]), results
        assert ctx.db.scalar("SELECT count(*) FROM control_center_users WHERE role = 'admin' AND is_active") == 1


def test_unlock_clears_a_lockout_the_users_list_shows(isolated_ctx: AppContext, clock: FakeClock) -> None:
    ctx = isolated_ctx
    _, admin = _staff(ctx, "admin")
    create = apps.client("cc_users_create").post(
        "/internal/control-center-users",
        json={"email": "locked@bestie.test", "password": "Passw0rdOk", "role": "operator"},
        headers=admin,
    )
    assert create.status_code == 201
    user_id = create.json["id"]
    login = apps.client("auth_cc_login")
    # The email-wide lock needs cc_max_failed_logins (5) failures from each of EMAIL_LOCK_FACTOR (10) IPs.
    for n in range(10):
        for _ in range(5):
            login.post(
                "/internal/auth/login",
                json={"email": "locked@bestie.test", "password": "wrong"},
                headers={**ORIGIN, "X-Forwarded-For": f"198.51.100.{n}"},
            )
    fresh_ip = {**ORIGIN, "X-Forwarded-For": "203.0.113.7"}
    locked = login.post(
        "/internal/auth/login", json={"email": "locked@bestie.test", "password": "Passw0rdOk"}, headers=fresh_ip
    )
    assert locked.status_code == 401 and locked.json["error"]["code"] == "INVALID_CREDENTIALS"
    listed = _users(admin)[user_id]
    assert listed["locked_until"] == (clock() + timedelta(minutes=15)).isoformat()  # app_config cc_lockout_minutes

    resp = _unlock(user_id, admin)

    assert resp.status_code == 200 and resp.json["locked_until"] is None
    assert _users(admin)[user_id]["locked_until"] is None
    ok = login.post(
        "/internal/auth/login", json={"email": "locked@bestie.test", "password": "Passw0rdOk"}, headers=fresh_ip
    )
    assert ok.status_code == 200, ok.json
    actions = [r["action"] for r in ctx.db.rows("SELECT action FROM cc_audit_log WHERE target_id = :t", t=user_id)]
    assert actions == ["cc_user.create", "cc_user.unlock"]
    assert _unlock(user_id, admin).status_code == 200  # nothing to clear: no audit row
    assert ctx.db.scalar("SELECT count(*) FROM cc_audit_log WHERE action = 'cc_user.unlock'") == 1
