"""Staff delete a mitra's account on the mitra's request, by the rules of customer deletion: access
ends everywhere, open chats end as an ordinary end by the mitra, personal data goes, what the
other party and the audit need stays (docs/auth.md, "Mitra deletion")."""

from __future__ import annotations

from shared import devices
from shared.anonymity import DELETED_NAME
from shared.context import AppContext
from tests.support.auth_support import bearer, client, otp_sign_in, refresh, request_otp
from tests.support.chat_support import active_session, send
from tests.support.tokens import cc_token, cc_user


def _delete(mitra_id, headers):
    return client("mitras_delete").delete(f"/internal/mitras/{mitra_id}", headers=headers)


def test_a_deleted_mitra_loses_access_data_and_devices_while_the_customers_chat_ends_and_stays(
    isolated_ctx: AppContext,
):
    ctx = isolated_ctx
    pair = active_session(ctx)
    number = ctx.db.scalar("SELECT phone_e164 FROM mitras WHERE id = CAST(:m AS uuid)", m=pair.mitra_id)
    signed = otp_sign_in("mitra", number).json
    devices.upsert(ctx, "mitra", pair.mitra_id, f"mitra-phone-{pair.mitra_id}", "android")
    assert send("mitra", pair.mitra, pair.session_id, "hello").status_code in (200, 201)
    admin_id, admin = cc_user(ctx, "admin")

    resp = _delete(pair.mitra_id, bearer(admin))
    assert resp.status_code == 200, resp.json
    assert resp.json["ended_chat_sessions"] == 1 and resp.json["revoked_sessions"] >= 1

    row = ctx.db.one(
        "SELECT phone_e164, display_name, is_active, is_online, deleted_at FROM mitras WHERE id = CAST(:m AS uuid)",
        m=pair.mitra_id,
    )
    assert row["phone_e164"] == f"deleted:{pair.mitra_id}" and row["display_name"] == DELETED_NAME
    assert row["deleted_at"] is not None
    assert row["is_active"] is False and row["is_online"] is False
    assert devices.tokens_for(ctx, "mitra", [pair.mitra_id]) == {}
    assert refresh(signed["refresh_token"]).status_code in (401, 403)
    assert request_otp("mitra", number).json["error"]["code"] == "MITRA_NOT_FOUND"
    # The customer's chat ended as if the mitra ended it, and its transcript still reads.
    session = ctx.db.one("SELECT status, end_reason FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=pair.session_id)
    assert (session["status"], session["end_reason"]) == ("ended", "mitra_ended")
    bodies = [
        r["body"]
        for r in ctx.db.rows("SELECT body FROM chat_messages WHERE session_id = CAST(:s AS uuid)", s=pair.session_id)
    ]
    assert "hello" in bodies
    audit = ctx.db.rows("SELECT actor, action FROM cc_audit_log WHERE target_id = :m ORDER BY id", m=pair.mitra_id)
    assert (f"cc:{admin_id}", "mitra.delete") in [(a["actor"], a["action"]) for a in audit]

    again = _delete(pair.mitra_id, bearer(admin))  # a retry finds it done
    assert again.status_code == 200 and again.json["ended_chat_sessions"] == 0


def test_only_an_admin_deletes_a_mitra(isolated_ctx: AppContext):
    ctx = isolated_ctx
    pair = active_session(ctx)
    refused = _delete(pair.mitra_id, bearer(cc_token(ctx, "operator")))
    assert refused.status_code == 403 and refused.json["error"]["code"] == "ADMIN_REQUIRED"
    assert ctx.db.scalar("SELECT deleted_at FROM mitras WHERE id = CAST(:m AS uuid)", m=pair.mitra_id) is None
    unknown = _delete("00000000-0000-0000-0000-000000000000", bearer(cc_token(ctx, "admin")))
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "MITRA_NOT_FOUND"
