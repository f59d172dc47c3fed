"""The FCM adapter runs the real firebase-admin code against a loopback FCM v1 stand-in."""

from dataclasses import replace

import pytest

from shared import push as push_module
from shared.config import Settings
from shared.push import FcmPush, LogPush, build_provider
from tests.fcm_standin import FcmStandIn, anonymous_credential


@pytest.fixture
def fcm():
    with FcmStandIn() as standin:
        settings = replace(Settings.from_env(), push_provider="fcm", fcm_project_id="bestie-test")
        yield standin, FcmPush(settings, endpoint=standin.url, credential=anonymous_credential())


def test_data_message_is_fanned_out_to_every_token(fcm):
    standin, push = fcm
    result = push.send(["tok-a", "tok-b", "tok-c"], {"type": "pairing_offer", "session_id": "s1"})
    assert (result.sent, result.failed, result.unregistered) == (3, 0, [])
    assert sorted(r["message"]["token"] for r in standin.messages) == ["tok-a", "tok-b", "tok-c"]
    assert all(p == "/v1/projects/bestie-test/messages:send" for p in standin.paths)
    message = standin.messages[0]["message"]
    assert message["data"] == {"type": "pairing_offer", "session_id": "s1"}
    assert message["android"]["priority"] == "high"
    assert "notification" not in message  # a data message: the app decides what to show


def test_unregistered_tokens_are_reported_for_deletion(fcm):
    _, push = fcm
    result = push.send(["tok-a", "dead-1", "bad-1", "dead-2"], {"type": "x"})
    assert result.sent == 1
    assert sorted(result.unregistered) == ["dead-1", "dead-2"]
    assert result.failed == 1  # INVALID_ARGUMENT is a failure, not a reason to delete the token


def test_log_provider_records_messages():
    push = build_provider(replace(Settings.from_env(), push_provider="log"))
    assert isinstance(push, LogPush)
    assert push.send(["t"], {"type": "x"}).sent == 1
    assert push.sent == [(["t"], {"type": "x"})]


def test_a_provider_built_where_a_dropped_one_lived_gets_its_own_firebase_app(monkeypatch):
    # A dropped provider's firebase app stays registered, and CPython hands its address to a
    # later object; every id() answering the same simulates that reuse deterministically.
    monkeypatch.setattr(push_module, "id", lambda _obj: 4242, raising=False)
    settings = replace(Settings.from_env(), push_provider="fcm", fcm_project_id="bestie-test")
    first = FcmPush(settings, endpoint="http://127.0.0.1:9", credential=anonymous_credential())
    second = FcmPush(settings, endpoint="http://127.0.0.1:9", credential=anonymous_credential())
    assert first._app.name != second._app.name
