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
    # display_name is optional (SPEC 12); phone is not.
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
