"""Staff read a chat session's transcript: admins only, paged, and every read leaves an audit row.

The audit row is written in the transaction that reads the messages, so a read whose audit row
cannot be written returns nothing (docs/control-center.md, "Transcripts").
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.context import AppContext
from tests.support import apps
from tests.support.chat_support import active_session, send
from tests.support.tokens import bearer, cc_token, cc_user


def _transcript(session_id: str, headers: dict[str, str], **query: str) -> Any:
    return apps.client("chat_sessions_messages").get(
        f"/internal/chat-sessions/{session_id}/messages", headers=headers, query_string=query
    )


def _reads(ctx: AppContext) -> list[dict[str, Any]]:
    return ctx.db.rows(
        "SELECT actor, target_type, target_id, detail FROM cc_audit_log"
        " WHERE action = 'chat_session.transcript_read' ORDER BY id"
    )


def test_an_admin_reads_the_whole_transcript_oldest_first_in_pages_and_each_read_is_audited(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    assert send("client", pair.customer, pair.session_id, "halo kak").status_code == 201
    assert send("mitra", pair.mitra, pair.session_id, "halo juga").status_code == 201
    assert send("client", pair.customer, pair.session_id, "boleh cerita?").status_code == 201
    admin_id, token = cc_user(ctx, "admin")
    admin = bearer(token)

    whole = _transcript(pair.session_id, admin)
    assert whole.status_code == 200, whole.json
    stored = ctx.db.rows(
        "SELECT id, sender_type, body FROM chat_messages WHERE session_id = CAST(:s AS uuid) ORDER BY id",
        s=pair.session_id,
    )
    assert [(m["id"], m["sender_type"], m["body"]) for m in whole.json["messages"]] == [
        (r["id"], r["sender_type"], r["body"]) for r in stored
    ]
    assert [m["body"] for m in whole.json["messages"] if m["sender_type"] != "system"] == [
        "halo kak",
        "halo juga",
        "boleh cerita?",
    ]
    assert whole.json["next_cursor"] is None and whole.json["session_id"] == pair.session_id

    pages: list[int] = []
    cursor = ""
    while True:
        page = _transcript(pair.session_id, admin, limit="2", **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200 and len(page.json["messages"]) <= 2
        pages += [m["id"] for m in page.json["messages"]]
        if page.json["next_cursor"] is None:
            break
        cursor = page.json["next_cursor"]
    assert pages == [r["id"] for r in stored]

    reads = _reads(ctx)
    assert len(reads) == 1 + (len(stored) + 1) // 2  # one row per read, pages included
    assert {r["actor"] for r in reads} == {f"cc:{admin_id}"}
    assert {(r["target_type"], r["target_id"]) for r in reads} == {("chat_session", pair.session_id)}
    assert reads[0]["detail"] == {"count": len(stored), "first_id": stored[0]["id"], "last_id": stored[-1]["id"]}


def test_a_transcript_is_refused_to_operators_customers_mitras_and_strangers_and_nothing_is_audited(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    assert send("client", pair.customer, pair.session_id, "rahasia").status_code == 201
    operator = _transcript(pair.session_id, bearer(cc_token(ctx, "operator")))
    assert operator.status_code == 403 and operator.json["error"]["code"] == "ADMIN_REQUIRED"
    for own_party in (pair.customer, pair.mitra):  # even the session's own parties: this is the staff route
        refused = _transcript(pair.session_id, own_party)
        assert refused.status_code == 403 and refused.json["error"]["code"] == "WRONG_USER_TYPE"
        assert "rahasia" not in refused.get_data(as_text=True)
    assert _transcript(pair.session_id, {}).status_code == 401
    assert _transcript(pair.session_id, {"Authorization": "Bearer not-a-token"}).status_code == 401
    assert _reads(ctx) == []


def test_bad_transcript_requests_are_4xx_with_a_code_and_write_no_audit_row(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    other = active_session(ctx)
    admin = bearer(cc_token(ctx, "admin"))
    missing = _transcript(str(uuid.uuid4()), admin)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "SESSION_NOT_FOUND"
    assert _transcript("not-a-uuid", admin).json["error"]["field"] == "id"
    for query, field in (({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"cursor": "x"}, "cursor")):
        bad = _transcript(pair.session_id, admin, **query)
        assert bad.status_code == 400 and bad.json["error"]["field"] == field, (query, bad.json)
    first = _transcript(other.session_id, admin, limit="1").json
    foreign = _transcript(pair.session_id, admin, cursor=first["next_cursor"])  # another session's cursor
    assert foreign.status_code == 400 and foreign.json["error"]["field"] == "cursor"
    sessions_cursor = apps.client("chat_sessions_list").get(
        "/internal/chat-sessions", query_string={"limit": "1"}, headers=admin
    )
    mixed = _transcript(pair.session_id, admin, cursor=sessions_cursor.json["next_cursor"])
    assert mixed.status_code == 400 and mixed.json["error"]["field"] == "cursor"
    assert [r["target_id"] for r in _reads(ctx)] == [other.session_id]  # only the one good read


def test_a_transcript_read_whose_audit_row_cannot_be_written_returns_no_messages(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    pair = active_session(ctx)
    assert send("client", pair.customer, pair.session_id, "jangan bocor").status_code == 201
    admin = bearer(cc_token(ctx, "admin"))
    with ctx.db.transaction() as tx:
        tx.execute(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$"
        )
        tx.execute(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON cc_audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        )
        tx.commit()
    refused = _transcript(pair.session_id, admin)
    assert refused.status_code >= 500
    assert "jangan bocor" not in refused.get_data(as_text=True)
    assert _reads(ctx) == []
