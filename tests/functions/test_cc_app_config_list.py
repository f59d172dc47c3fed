"""The app_config listing: every key with its type, bounds and description; booleans are booleans.

`mitra_sees_customer_name` is a boolean: it reads as JSON `true`/`false` wherever staff see it,
a PUT takes `true`/`false` (and the 0/1 the route took before, for compatibility), and the
anonymity rule reads the stored boolean (docs/control-center.md, "App config").
"""

from __future__ import annotations

from typing import Any

from shared import anonymity, app_config
from shared.context import AppContext
from tests.support import apps
from tests.support.pairing_support import customer
from tests.support.tokens import bearer, cc_token


def _listing(headers: dict[str, str]) -> Any:
    return apps.client("app_config_list").get("/internal/app-config", headers=headers)


def _put(key: str, value: Any, headers: dict[str, str]) -> Any:
    return apps.client("app_config_put").put(f"/internal/app-config/{key}", json={"value": value}, headers=headers)


def test_the_listing_names_every_key_with_its_type_bounds_description_and_value(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    resp = _listing(bearer(cc_token(ctx, "operator")))
    assert resp.status_code == 200, resp.json
    items = {item["key"]: item for item in resp.json["app_config"]}
    assert list(items) == list(app_config.DEFAULTS)
    for key, item in items.items():
        assert item["description"].strip(), key
        assert item["type"] in ("integer", "boolean", "integer_list"), key
        assert {"key", "type", "value", "default", "min", "max", "description", "updated_at"} <= set(item), key
    sees = items["mitra_sees_customer_name"]
    assert sees["type"] == "boolean" and sees["value"] is False and sees["default"] is False
    assert sees["min"] is None and sees["max"] is None
    ttl = items["otp_ttl_seconds"]
    assert (ttl["type"], ttl["value"], ttl["min"], ttl["max"]) == ("integer", 300, 30, 3600)
    minutes = items["session_allowed_minutes"]
    assert minutes["type"] == "integer_list" and minutes["max_items"] == app_config.LIST_MAX
    assert (minutes["min"], minutes["max"]) == (1, 1440) and minutes["value"] == [5, 10, 15, 20, 30, 45, 60, 90, 120]


def test_the_listed_bounds_are_the_ones_a_put_enforces(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    admin = bearer(cc_token(ctx, "admin"))
    for item in _listing(admin).json["app_config"]:
        key, low, high = item["key"], item["min"], item["max"]
        if item["type"] == "boolean":
            continue
        wrap = (lambda v: [v]) if item["type"] == "integer_list" else (lambda v: v)
        assert _put(key, wrap(low - 1), admin).status_code == 400, key
        assert _put(key, wrap(high + 1), admin).status_code == 400, key
        assert _put(key, wrap(high), admin).status_code == 200, key
        assert _put(key, wrap(low), admin).status_code == 200, key
    assert {i["key"]: i["value"] for i in _listing(admin).json["app_config"]}["otp_ttl_seconds"] == 30


def test_a_boolean_setting_takes_true_and_false_reads_back_as_a_boolean_and_drives_anonymity(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    admin = bearer(cc_token(ctx, "admin"))
    key = "mitra_sees_customer_name"
    one = apps.client("app_config_get").get(f"/internal/app-config/{key}", headers=admin)
    assert one.status_code == 200 and one.json["value"] is False and one.json["default"] is False

    turned_on = _put(key, True, admin)
    assert turned_on.status_code == 200, turned_on.json
    assert turned_on.json["value"] is True
    assert ctx.db.scalar("SELECT value FROM app_config WHERE key = :k", k=key) is True  # stored as JSON true
    assert anonymity.mitra_sees_name(ctx) is True
    assert apps.client("app_config_get").get(f"/internal/app-config/{key}", headers=admin).json["value"] is True
    listed = {i["key"]: i for i in _listing(admin).json["app_config"]}[key]
    assert listed["value"] is True and listed["updated_at"] is not None

    assert _put(key, False, admin).json["value"] is False and anonymity.mitra_sees_name(ctx) is False
    assert _put(key, 1, admin).json["value"] is True  # the integers the route took before still work
    assert _put(key, 0, admin).json["value"] is False
    for bad in ("true", 2, -1, None, [True], 0.5):
        refused = _put(key, bad, admin)
        assert refused.status_code == 400 and refused.json["error"]["field"] == "value", bad
    integer_key = _put("otp_ttl_seconds", True, admin)  # an integer setting still refuses a boolean
    assert integer_key.status_code == 400 and integer_key.json["error"]["field"] == "value"


def test_the_listing_is_refused_to_customers_mitras_and_strangers(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    _, customer_auth = customer(ctx)
    refused = _listing(customer_auth)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "WRONG_USER_TYPE"
    assert _listing({}).status_code == 401
    operator_put = _put("otp_ttl_seconds", 60, bearer(cc_token(ctx, "operator")))
    assert operator_put.status_code == 403 and operator_put.json["error"]["code"] == "ADMIN_REQUIRED"
