"""The global audit log: every control-center change (and transcript read), newest first, paged,
filtered by actor, target, action and a time range; admins only (docs/control-center.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import availability
from shared.context import AppContext
from tests.support import apps
from tests.support.helpers import FakeClock
from tests.support.pairing_support import customer
from tests.support.tokens import bearer, cc_user, mitra_token


def _log(headers: dict[str, str], **query: str) -> Any:
    return apps.client("audit_log_list").get("/internal/audit-log", headers=headers, query_string=query)


def _actions(resp: Any) -> list[tuple[str, str]]:
    assert resp.status_code == 200, resp.json
    return [(e["action"], e["target_id"]) for e in resp.json["audit_log"]]


def test_the_audit_log_is_filtered_by_actor_target_action_and_time_and_paged_newest_first(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    first_id, first_token = cc_user(ctx, "admin")
    second_id, second_token = cc_user(ctx, "admin")
    first, second = bearer(first_token), bearer(second_token)
    start = clock()
    put = apps.client("app_config_put")
    assert put.put("/internal/app-config/otp_ttl_seconds", json={"value": 120}, headers=first).status_code == 200
    clock.advance(60)
    customer_id, _ = customer(ctx)
    block = apps.client("customers_block").post(f"/internal/customers/{customer_id}/block", headers=first)
    assert block.status_code == 200
    clock.advance(60)
    made = apps.client("mitras_create").post(
        "/internal/mitras", json={"phone": "081355550001", "display_name": "Sari"}, headers=second
    )
    mitra_id = made.json["id"]
    clock.advance(60)
    assert put.put("/internal/app-config/otp_ttl_seconds", json={"value": 240}, headers=second).status_code == 200
    unblock = apps.client("customers_unblock").post(f"/internal/customers/{customer_id}/unblock", headers=second)
    assert unblock.status_code == 200

    everything = [
        ("customer.unblock", customer_id),
        ("app_config.put", "otp_ttl_seconds"),
        ("mitra.create", mitra_id),
        ("customer.block", customer_id),
        ("app_config.put", "otp_ttl_seconds"),
    ]
    whole = _log(first)
    assert _actions(whole) == everything and whole.json["next_cursor"] is None
    entry = whole.json["audit_log"][-1]
    assert entry["actor"] == f"cc:{first_id}" and entry["target_type"] == "app_config"
    assert entry["detail"] == {"value": 120} and entry["at"] == start.isoformat()

    assert _actions(_log(first, actor=f"cc:{second_id}")) == everything[:3]
    assert _actions(_log(first, target_type="customer", target_id=customer_id)) == [everything[0], everything[3]]
    assert _actions(_log(first, target_type="mitra")) == [everything[2]]
    assert _actions(_log(first, action="app_config.put")) == [everything[1], everything[4]]
    assert _actions(_log(first, action="app_config.put", actor=f"cc:{first_id}")) == [everything[4]]
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731 (a tiny formatter)
    # `from` inclusive, `to` exclusive: the block (start + 60 s) and the mitra (start + 120 s).
    window = _log(first, **{"from": iso(start + timedelta(seconds=60)), "to": iso(start + timedelta(seconds=180))})
    assert _actions(window) == [everything[2], everything[3]]
    assert _actions(_log(first, **{"from": iso(start + timedelta(seconds=180))})) == everything[:2]
    assert _actions(_log(first, to=iso(start + timedelta(seconds=1)))) == [everything[4]]

    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        page = _log(first, limit="2", **({"cursor": cursor} if cursor else {}))
        seen += _actions(page)
        cursor = page.json["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    filtered_page = _log(first, limit="1", action="app_config.put")
    rest = _log(first, limit="1", action="app_config.put", cursor=filtered_page.json["next_cursor"])
    assert _actions(filtered_page) + _actions(rest) == [everything[1], everything[4]]


def test_bad_audit_log_queries_are_400_naming_the_parameter(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    admin = bearer(cc_user(ctx, "admin")[1])
    for query, field in (
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-12-01T00:00:00"}, "to"),  # no timezone: ambiguous
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00+14:00"}, "from"),
        ({"target_type": "planet"}, "target_type"),
        ({"target_id": "x"}, "target_id"),  # a target id needs its type
        ({"limit": "0"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"actor": "x" * 201}, "actor"),
    ):
        bad = _log(admin, **query)
        assert bad.status_code == 400, (query, bad.json)
        assert bad.json["error"]["code"] == "VALIDATION_FAILED" and bad.json["error"]["field"] == field, query


def test_the_audit_log_is_refused_to_operators_customers_mitras_and_strangers(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    operator = _log(bearer(cc_user(ctx, "operator")[1]))
    assert operator.status_code == 403 and operator.json["error"]["code"] == "ADMIN_REQUIRED"
    _, customer_auth = customer(ctx)
    assert _log(customer_auth).json["error"]["code"] == "WRONG_USER_TYPE"
    mitra_id = str(
        ctx.db.scalar("INSERT INTO mitras (phone_e164, display_name) VALUES ('+6281355550002', 'M') RETURNING id")
    )
    assert _log(bearer(mitra_token(ctx, mitra_id)[0])).json["error"]["code"] == "WRONG_USER_TYPE"
    assert _log({}).status_code == 401
