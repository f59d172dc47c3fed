"""The Android/web callback of Sign in with Apple, as the Flutter sign_in_with_apple package
documents it: Apple form-posts here, and we send the browser back into the app by an intent URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import make_context
from tests.support.apps import client
from tests.support.helpers import installed

PACKAGE = "id.bestie.app"


@pytest.fixture
def configured():
    with installed(make_context(apple_android_package=PACKAGE)) as app_ctx:
        yield app_ctx


def _post(data, **kwargs):
    return client("apple_callback").post("/api/apple/callback", data=data, **kwargs)


def test_apple_form_post_is_redirected_into_the_app_with_every_field(configured):
    form = {"code": "c123", "id_token": "a.b.c", "state": "s-1", "user": '{"name":{"firstName":"Ayu"}}'}
    resp = _post(form)
    assert resp.status_code == 307
    location = resp.headers["Location"]
    assert location.startswith("intent://callback?")
    assert location.endswith(f"#Intent;package={PACKAGE};scheme=signinwithapple;end")
    query = urlsplit(location.split("#", 1)[0]).query
    assert {k: v[0] for k, v in parse_qs(query).items()} == form


def test_a_field_cannot_smuggle_another_package_into_the_intent(configured):
    resp = _post({"code": "c", "state": "x#Intent;package=evil.app;scheme=signinwithapple;end"})
    location = resp.headers["Location"]
    assert location.count("#") == 1 and location.endswith(f"package={PACKAGE};scheme=signinwithapple;end")


def test_a_callback_without_a_code_or_an_error_is_400(configured):
    resp = _post({"state": "s"})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "VALIDATION_FAILED"


def test_a_json_body_is_415(configured):
    resp = client("apple_callback").post("/api/apple/callback", json={"code": "c"})
    assert resp.status_code == 415


def test_without_an_android_package_the_callback_is_503(ctx):
    resp = _post({"code": "c"})
    assert resp.status_code == 503 and resp.json["error"]["code"] == "PROVIDER_NOT_CONFIGURED"
