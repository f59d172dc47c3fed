"""The HTTP edge through functions-framework's create_app: errors are JSON 4xx, never 500."""

import json
import uuid

import pytest


def _phone():
    return f"+62812{uuid.uuid4().int % 10**8:08d}"


def test_seed_mitra_is_idempotent_by_phone(call):
    client = call("test_seed_mitra")
    first = client.post("/internal/_test/seed-mitra", json={"phone": _phone(), "display_name": "Ayu"})
    assert first.status_code == 201
    again = client.post("/internal/_test/seed-mitra", json={"phone": first.json["phone"], "display_name": "Other"})
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"] and again.json["display_name"] == "Ayu"


def test_spellings_of_one_phone_seed_one_mitra(call):
    client = call("test_seed_mitra")
    local = "0812" + str(uuid.uuid4().int % 10**8).zfill(8)
    a = client.post("/internal/_test/seed-mitra", json={"phone": local, "display_name": "A"}).json
    b = client.post("/internal/_test/seed-mitra", json={"phone": "62" + local[1:], "display_name": "A"}).json
    assert a["id"] == b["id"] and a["phone"] == "+62" + local[1:]


def test_malformed_json_is_400_validation_failed(call):
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "VALIDATION_FAILED" and resp.json["error"]["field"] == "body"


def test_json_that_is_not_an_object_is_rejected(call):
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", data="[1,2]", content_type="application/json")
    assert resp.status_code == 400 and resp.json["error"]["field"] == "body"


def test_nan_is_not_json(call):
    resp = call("test_seed_mitra").post(
        "/internal/_test/seed-mitra", data='{"phone": NaN}', content_type="application/json"
    )
    assert resp.status_code == 400 and resp.json["error"]["code"] == "VALIDATION_FAILED"


def test_missing_field_is_named(call):
    # display_name is optional (docs/control-center.md); phone is not.
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", json={"display_name": "Sari"})
    assert resp.status_code == 400
    assert resp.json["error"] == {
        "code": "VALIDATION_FAILED",
        "message": "phone: is required",
        "field": "phone",
    }


def test_wrong_type_is_named(call):
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", json={"phone": 812, "display_name": "x"})
    assert resp.status_code == 400 and resp.json["error"]["field"] == "phone"


def test_wrong_content_type_is_415(call):
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", data="phone=1", content_type="text/plain")
    assert resp.status_code == 415 and resp.json["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_oversized_body_is_413(call):
    body = json.dumps({"phone": _phone(), "display_name": "x" * 200_000})
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", data=body, content_type="application/json")
    assert resp.status_code == 413 and resp.json["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_deeply_nested_json_is_a_400_not_a_crash(call):
    body = "[" * 100_000 + "]" * 100_000
    resp = call("test_seed_mitra").post(
        "/internal/_test/seed-mitra", data=body[:60_000], content_type="application/json"
    )
    assert resp.status_code == 400


def test_wrong_method_is_405_json(call):
    resp = call("test_seed_mitra").get("/internal/_test/seed-mitra")
    assert resp.status_code == 405 and resp.json["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_path_outside_the_route_is_404_json(call):
    resp = call("healthz").get("/nothing/here")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"


def test_test_endpoints_are_absent_unless_enabled(call, ctx, monkeypatch):
    from dataclasses import replace

    from shared import context

    context.install(type(ctx)(replace(ctx.settings, enable_test_endpoints=False)))
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", json={"phone": _phone(), "display_name": "x"})
    assert resp.status_code == 404


def test_request_id_and_no_store_are_on_every_response(call):
    resp = call("healthz").get("/healthz", headers={"X-Request-Id": "abc123"})
    assert resp.headers["X-Request-Id"] == "abc123"
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("origin,allowed", [("https://cc.example.test", True), ("https://evil.example", False)])
def test_cors_on_internal_routes_only_for_the_control_center_origin(call, origin, allowed):
    resp = call("test_seed_mitra").options("/internal/_test/seed-mitra", headers={"Origin": origin})
    assert resp.status_code == 204
    assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    get = call("healthz").get("/healthz", headers={"Origin": "https://cc.example.test"})
    assert "Access-Control-Allow-Origin" not in get.headers  # /healthz is not an internal route


def test_the_control_center_page_may_read_retry_after_and_the_request_id(call):
    resp = call("auth_cc_login").post(
        "/internal/auth/login",
        json={"email": "nobody@example.test", "password": "Wrong-password-1"},
        headers={"Origin": "https://cc.example.test"},
    )
    assert resp.status_code == 401 and resp.headers["Access-Control-Allow-Origin"] == "https://cc.example.test"
    exposed = {h.strip().lower() for h in resp.headers.get("Access-Control-Expose-Headers", "").split(",")}
    assert {"retry-after", "x-request-id"} <= exposed


def test_cors_on_api_routes_only_for_configured_app_web_origins(ctx, call):
    from dataclasses import replace as _replace

    from shared import context

    web = "https://app.example.test"
    preflight = {
        "Origin": web,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    resp = call("pairing_availability").options("/api/client/availability", headers=preflight)
    assert "Access-Control-Allow-Origin" not in resp.headers  # none by default

    context.install(type(ctx)(_replace(ctx.settings, app_web_origins=(web, "https://other.example.test"))))
    resp = call("pairing_availability").options("/api/client/availability", headers=preflight)
    assert resp.status_code == 204 and resp.headers["Access-Control-Allow-Origin"] == web
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in resp.headers  # apps send bearer tokens, never cookies
    got = call("pairing_availability").get("/api/client/availability", headers={"Origin": web})
    assert got.status_code == 401 and got.headers["Access-Control-Allow-Origin"] == web
    assert "Retry-After" in got.headers["Access-Control-Expose-Headers"]
    evil = call("pairing_availability").get("/api/client/availability", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    internal = call("test_seed_mitra").options("/internal/_test/seed-mitra", headers={"Origin": web})
    assert "Access-Control-Allow-Origin" not in internal.headers  # app origins never get the control center's routes


# ---- the edge filter: text Postgres cannot store, numbers it cannot hold ------------------------


def _raw_json(text: str) -> dict:
    return {"data": text, "content_type": "application/json"}


@pytest.mark.parametrize(
    "field,escaped,problem",
    [
        ("display_name", '"Ayu\\u0000"', "must not contain NUL characters"),
        ("display_name", '"\\udc00Ayu"', "must be valid Unicode text"),
        ("phone", '"\\ud800"', "must be valid Unicode text"),
    ],
)
def test_unstorable_text_in_a_body_field_is_400_naming_the_field(call, field, escaped, problem):
    body = {"phone": f'"{_phone()}"', "display_name": '"Ayu"', field: escaped}
    text = "{" + ",".join(f'"{k}": {v}' for k, v in body.items()) + "}"
    resp = call("test_seed_mitra").post("/internal/_test/seed-mitra", **_raw_json(text))
    assert resp.status_code == 400
    assert resp.json["error"] == {"code": "VALIDATION_FAILED", "message": f"{field}: {problem}", "field": field}


def test_unstorable_text_at_any_depth_and_in_keys_is_named(call):
    client = call("test_seed_mitra")
    nested = client.post("/internal/_test/seed-mitra", **_raw_json('{"phone": "x", "extra": {"a": [1, "\\u0000"]}}'))
    assert nested.status_code == 400 and nested.json["error"]["field"] == "extra.a[1]"
    key = client.post("/internal/_test/seed-mitra", **_raw_json('{"phone": "x", "\\udc00": 1}'))
    assert key.status_code == 400 and key.json["error"]["field"] == "body"


@pytest.mark.parametrize("number", ["1e400", "-1e400", "99999999999999999999999"])
def test_numbers_out_of_range_are_400_not_500(call, ctx, number):
    from tests.support.tokens import bearer, cc_token

    resp = call("app_config_put").put(
        "/internal/app-config/otp_ttl_seconds", headers=bearer(cc_token(ctx)), **_raw_json(f'{{"value": {number}}}')
    )
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "VALIDATION_FAILED" and resp.json["error"]["field"] == "value"


@pytest.mark.parametrize("before", ["99999999999999999999999", "-99999999999999999999999", "9223372036854775808"])
def test_query_integer_beyond_bigint_is_400_naming_it(call, ctx, before):
    from tests.support.tokens import bearer, cc_token

    mitra = call("test_seed_mitra").post("/internal/_test/seed-mitra", json={"phone": _phone(), "display_name": "A"})
    resp = call("mitras_logs").get(
        f"/internal/mitras/{mitra.json['id']}/logs?before={before}", headers=bearer(cc_token(ctx))
    )
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "VALIDATION_FAILED" and resp.json["error"]["field"] == "before"


def test_nul_in_a_query_parameter_is_400_naming_it(call, ctx):
    from tests.support.tokens import bearer, cc_token

    resp = call("mitras_list").get("/internal/mitras?cursor=a%00b", headers=bearer(cc_token(ctx)))
    assert resp.status_code == 400 and resp.json["error"]["field"] == "cursor"


@pytest.mark.parametrize("user_agent", ["Mozilla\x00/5.0", "Mozilla/5.0 \udc00", "Mozilla\x1b[31m/5.0"])
def test_hostile_user_agent_is_stored_cleaned_not_a_500(call, ctx, user_agent):
    resp = call("auth_anonymous").post(
        "/api/shared/auth/anonymous", headers={"User-Agent": user_agent, "X-Forwarded-For": "10.9.8.7"}
    )
    assert resp.status_code == 201
    stored = ctx.db.scalar(
        "SELECT user_agent FROM auth_sessions WHERE user_id = CAST(:u AS uuid)", u=resp.json["user"]["id"]
    )
    assert stored is not None and stored.startswith("Mozilla")
    assert "\x00" not in stored and "\x1b" not in stored
    stored.encode("utf-8")


def test_forwarded_for_that_is_not_an_address_falls_back_to_the_socket(call):
    resp = call("auth_anonymous").post("/api/shared/auth/anonymous", headers={"X-Forwarded-For": "evil\x00,\udc00"})
    assert resp.status_code == 201


def test_request_id_that_is_not_a_plain_token_is_replaced(call):
    resp = call("healthz").get("/healthz", headers={"X-Request-Id": "abc\x00\x1bdef"})
    assert resp.headers["X-Request-Id"] != "abc\x00\x1bdef" and len(resp.headers["X-Request-Id"]) == 32


def test_unstorable_refresh_token_is_400_not_500(call):
    resp = call("auth_refresh").post(
        "/api/shared/auth/refresh", **_raw_json('{"refresh_token": "\\udc00\\udc00\\udc00\\udc00"}')
    )
    assert resp.status_code == 400 and resp.json["error"]["field"] == "refresh_token"


def test_lone_surrogate_logins_leave_the_pool_whole_and_every_later_answer_right(call, ctx):
    login = call("auth_cc_login")
    for _ in range(3 * ctx.settings.db_pool_size):
        resp = login.post(
            "/internal/auth/login",
            **_raw_json('{"email": "\\udc00@x.com", "password": "Secret123"}'),
            headers={"X-Forwarded-For": "10.1.2.3"},
        )
        assert resp.status_code == 400 and resp.json["error"]["field"] == "email"
    for _ in range(5):
        phone = _phone()
        seeded = call("test_seed_mitra").post("/internal/_test/seed-mitra", json={"phone": phone, "display_name": "A"})
        assert seeded.status_code == 201 and seeded.json["phone"] == phone
    assert ctx.db.in_use == 0


# ---- JSON for what never reaches the endpoint wrapper ------------------------------------------


@pytest.mark.parametrize(
    "path", ["/internal/mitras/abc%0Adef/logs", "/internal/mitras/%0A/logs", "/favicon.ico", "/robots.txt"]
)
def test_paths_flask_refuses_before_the_wrapper_get_a_json_404(call, path):
    resp = call("mitras_logs").get(path)
    assert resp.status_code == 404
    assert resp.mimetype == "application/json"
    assert resp.json["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("entry_point,route", [("chat_client_messages", "client"), ("chat_mitra_messages", "mitra")])
@pytest.mark.parametrize("segment", ["abc%0Adef", "%0A", "e3e70682-c209-4cac-a29f-6fbed82c07cd%0A"])
def test_a_newline_in_a_long_poll_routes_id_is_a_json_400_naming_it(call, ctx, entry_point, route, segment):
    """The coroutine functions' router (Starlette's `/{path:path}`) stopped at a newline and
    answered a text/plain 404 before the view."""
    from tests.support.tokens import _token, bearer

    token, _ = _token(ctx, "customer" if route == "client" else "mitra", str(uuid.uuid4()))
    resp = call(entry_point).get(f"/api/{route}/chat-sessions/{segment}/messages", headers=bearer(token))
    assert resp.status_code == 400 and resp.mimetype == "application/json"
    assert resp.json["error"]["field"] == "id"


def test_control_characters_in_a_path_id_are_400_naming_it(call, ctx):
    from tests.support.tokens import bearer, cc_token

    resp = call("mitras_logs").get("/internal/mitras/ab%00cd/logs", headers=bearer(cc_token(ctx)))
    assert resp.status_code == 400 and resp.json["error"]["field"] == "id"


def test_exception_outside_the_wrapper_is_a_json_500_without_details():
    import flask

    from shared.http import install_error_handlers

    app = flask.Flask("edge")
    install_error_handlers(app)

    @app.route("/boom")
    def boom():
        raise RuntimeError("secret detail")

    resp = app.test_client().get("/boom")
    assert resp.status_code == 500 and resp.json["error"]["code"] == "INTERNAL"
    assert b"secret detail" not in resp.data


@pytest.mark.parametrize("cookie", ["\x00abc", "abc\x1bdef"])
def test_refresh_cookie_that_is_not_clean_text_reads_as_absent(call, cookie):
    client = call("auth_cc_refresh")
    client.set_cookie("bestie_cc_refresh", cookie, path="/internal/auth")
    resp = client.post("/internal/auth/refresh", headers={"Origin": "https://cc.example.test"})
    assert resp.status_code == 401 and resp.json["error"]["code"]


@pytest.mark.parametrize(
    "status,code",
    [
        (404, "NOT_FOUND"),
        (405, "METHOD_NOT_ALLOWED"),
        (413, "PAYLOAD_TOO_LARGE"),
        (400, "BAD_REQUEST"),
        # any other status keeps one documented code (the ErrorCode enum), never werkzeug's name
        (408, "HTTP_ERROR"),
        (431, "HTTP_ERROR"),
    ],
)
def test_flask_aborts_outside_the_wrapper_are_json(status, code):
    import flask

    from shared.http import install_error_handlers

    app = flask.Flask("edge")
    install_error_handlers(app)

    @app.route("/abort")
    def abort():
        flask.abort(status)

    resp = app.test_client().get("/abort")
    assert resp.status_code == status and resp.mimetype == "application/json"
    assert resp.json["error"]["code"] == code


def test_a_scheduler_route_without_its_caller_check_fails_at_import():
    from shared.errors import ConfigError
    from shared.http import endpoint

    def sweep_auto_offline(req):  # the sweep's entry point name, wrapped without caller.authenticate
        return {}

    with pytest.raises(ConfigError, match="sweep-auto-offline"):
        endpoint("POST /sweeps/auto-offline", auth="scheduler")(sweep_auto_offline)


@pytest.mark.parametrize(
    ("serves", "auth"),
    [
        ("GET /api/client/availability", "mitra"),  # the wrong caller
        ("GET /api/client/availabilty", "customer"),  # a route the manifest does not give it
        ("POST /api/client/availability", "customer"),  # the wrong method
    ],
)
def test_a_handler_that_declares_another_route_or_caller_than_its_manifest_entry_fails_at_import(serves, auth):
    from shared.errors import ConfigError
    from shared.http import endpoint

    def pairing_availability(req):
        return {}

    with pytest.raises(ConfigError, match="pairing_availability declares"):
        endpoint(serves, auth=auth)(pairing_availability)
    assert endpoint("GET /api/client/availability", auth="customer")(pairing_availability)
