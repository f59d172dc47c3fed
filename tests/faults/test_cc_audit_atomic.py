"""A control-center change and its audit row commit together, or neither does.

A trigger makes every insert into cc_audit_log fail; each change must then answer with an
error and leave Postgres as it was (the audit row is written inside the change's own
transaction, not after its commit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared import availability
from shared.context import AppContext
from tests.support import apps
from tests.support.mirror_state import new_mitra
from tests.support.tokens import bearer, cc_token

# A case sets up what it changes and returns (read the state, make the change through its route).
Case = Callable[[AppContext, dict[str, str]], tuple[Callable[[], Any], Callable[[], Any]]]


def _deactivate(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    mitra = new_mitra(ctx)
    return (
        lambda: ctx.db.scalar("SELECT is_active FROM mitras WHERE id = CAST(:m AS uuid)", m=mitra),
        lambda: apps.client("mitras_deactivate").post(f"/internal/mitras/{mitra}/deactivate", headers=admin),
    )


def _edit(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    mitra = new_mitra(ctx)
    return (
        lambda: ctx.db.scalar("SELECT display_name FROM mitras WHERE id = CAST(:m AS uuid)", m=mitra),
        lambda: apps.client("mitras_patch").patch(
            f"/internal/mitras/{mitra}", json={"display_name": "Renamed"}, headers=admin
        ),
    )


def _create_mitra(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    body = {"phone": "081377779999", "display_name": "Ayu"}
    return (
        lambda: ctx.db.scalar("SELECT count(*) FROM mitras WHERE phone_e164 = '+6281377779999'"),
        lambda: apps.client("mitras_create").post("/internal/mitras", json=body, headers=admin),
    )


def _app_config(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    return (
        lambda: ctx.db.scalar("SELECT value FROM app_config WHERE key = 'session_default_minutes'"),
        lambda: apps.client("app_config_put").put(
            "/internal/app-config/session_default_minutes", json={"value": 45}, headers=admin
        ),
    )


def _create_staff(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    body = {"email": "op@bestie.test", "password": "Passw0rdOk"}
    return (
        lambda: ctx.db.scalar("SELECT count(*) FROM control_center_users WHERE email = 'op@bestie.test'"),
        lambda: apps.client("cc_users_create").post("/internal/control-center-users", json=body, headers=admin),
    )


def _reset_password(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    cc_token(ctx, "operator")
    user = str(ctx.db.scalar("SELECT id FROM control_center_users WHERE role = 'operator'"))
    return (
        lambda: ctx.db.scalar("SELECT password_hash FROM control_center_users WHERE id = CAST(:u AS uuid)", u=user),
        lambda: apps.client("cc_users_reset_password").patch(
            f"/internal/control-center-users/{user}/password", json={"new_password": "Passw0rdNew"}, headers=admin
        ),
    )


def _held_session(ctx: AppContext) -> tuple[str, Callable[[], Any]]:
    """A session a mitra holds (accepted, not yet paid: no audit row of its own), with someone to reroute to."""
    from tests.support.pairing_support import api, customer, online_mitras

    [(_, mitra_auth)] = online_mitras(ctx, 1)
    _, auth = customer(ctx)
    sid = api("request", auth, json={"duration_minutes": 10}).json["id"]
    assert api("accept", mitra_auth, sid).status_code == 200
    online_mitras(ctx, 1)
    return sid, lambda: ctx.db.one(
        "SELECT status, mitra_id, (SELECT count(*) FROM payments p WHERE p.session_id = s.id AND p.status = 'pending')"
        " AS pending FROM chat_sessions s WHERE id = CAST(:s AS uuid)",
        s=sid,
    )


def _force_end(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    sid, read = _held_session(ctx)
    url = f"/internal/chat-sessions/{sid}/end"
    return read, lambda: apps.client("chat_sessions_end").post(url, json={"reason": "abuse"}, headers=admin)


def _staff_reroute(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    sid, read = _held_session(ctx)
    url = f"/internal/chat-sessions/{sid}/reroute"
    return read, lambda: apps.client("chat_sessions_reroute").post(url, json={"reason": "slow"}, headers=admin)


def _deactivate_mid_session(ctx: AppContext, admin: dict[str, str]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    _, read = _held_session(ctx)
    mitra = str(read()["mitra_id"])
    url = f"/internal/mitras/{mitra}/deactivate"
    return read, lambda: apps.client("mitras_deactivate").post(url, headers=admin)


def _refuse_audit_rows(ctx: AppContext) -> None:
    with ctx.db.transaction() as tx:
        tx.execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$"
        )
        tx.execute(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON cc_audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        )
        tx.commit()


@pytest.mark.parametrize(
    "case",
    [
        _deactivate,
        _edit,
        _create_mitra,
        _app_config,
        _create_staff,
        _reset_password,
        _force_end,
        _staff_reroute,
        _deactivate_mid_session,
    ],
    ids=lambda case: case.__name__.strip("_"),
)
def test_a_change_whose_audit_row_cannot_be_written_is_not_made(isolated_ctx: AppContext, case: Case) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    admin = bearer(cc_token(ctx, "admin"))
    read_state, change = case(ctx, admin)
    before = read_state()
    _refuse_audit_rows(ctx)
    response = change()
    assert response.status_code >= 500, response.json
    assert read_state() == before
    assert ctx.db.scalar("SELECT count(*) FROM cc_audit_log") == 0
