"""The FCM adapter runs the real firebase-admin code against a loopback FCM v1 stand-in that is
as strict as FCM documents itself: every push kind reaches iOS and Android with its policy."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared import push as push_module
from shared.config import Settings
from shared.push import POLICIES, FcmPush, LogPush, PushPayloadError, build_provider, cut_graphemes, message
from tests.support.fcm_standin import FcmStandIn, Rejected, anonymous_credential, check

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
SILENT = sorted(k for k, p in POLICIES.items() if not p.visible)
VISIBLE = sorted(k for k, p in POLICIES.items() if p.visible)


@pytest.fixture
def fcm():
    with FcmStandIn() as standin:
        settings = replace(Settings.from_env(), push_provider="fcm", fcm_project_id="bestie-test")
        yield standin, FcmPush(settings, endpoint=standin.url, credential=anonymous_credential())


def _data(kind: str) -> dict[str, str]:
    data = {"type": kind, "session_id": "3f1c", "status": "searching"}
    if kind == "pairing_offer":
        data.update(duration_minutes="30", offer_expires_at=(NOW + timedelta(seconds=120)).isoformat())
    if kind == "session_accepted":
        data.update(mitra_id="m1", payment_deadline_at=(NOW + timedelta(minutes=10)).isoformat())
    if kind == "chat_message":
        data.update(message_id="7", sender_type="customer", sender_name="Customer 12", preview="hi")
    return data


# ---- the stand-in is as strict as FCM --------------------------------------------------------


def _ios_data_message(**extra):
    return {"token": "ios-phone", "data": {"type": "x"}, "apns": {"headers": {"apns-push-type": "background"}}, **extra}


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        ({"token": "a", "data": {"from": "x"}}, "message.data[0].key"),
        ({"token": "a", "data": {"google.x": "x"}}, "message.data[0].key"),
        ({"token": "a", "data": {"gcm.n": "x"}}, "message.data[0].key"),
        ({"token": "a", "data": {"n": 1}}, "message.data[0].value"),
        ({"token": "a", "data": {"big": "x" * 5000}}, "message.data"),
        ({"token": "a", "android": {"collapse_key": "k" * 100}}, "message.android.collapse_key"),
        ({"token": "a", "android": {"ttl": "120"}}, "message.android.ttl"),
        ({"token": "a", "android": {"ttl": "2419201s"}}, "message.android.ttl"),
        (_ios_data_message(), "message.apns.headers"),  # data-only to iOS at the default priority 10
        ({"token": "ios-phone", "apns": {"headers": {"apns-priority": "5"}}}, "message.apns.headers"),  # no push type
        ({"token": "a", "topic": "t"}, "message.token"),
    ],
)
def test_the_standin_refuses_what_fcm_refuses(msg, field):
    with pytest.raises(Rejected) as refused:
        check(msg)
    assert refused.value.field == field


def test_the_standin_accepts_a_background_push_to_ios_at_priority_5():
    msg = _ios_data_message(apns={"headers": {"apns-priority": "5", "apns-push-type": "background"}})
    msg["apns"]["payload"] = {"aps": {"content-available": 1}}
    assert check(msg) == "ios-phone"
    assert check({"token": "android-phone", "data": {"type": "x"}}) == "android-phone"


def test_log_provider_refuses_what_fcm_provider_refuses():
    log_push = build_provider(replace(Settings.from_env(), push_provider="log"))
    assert isinstance(log_push, LogPush)
    bad = replace(message("offer_closed", {"session_id": "s"}, NOW), data={"type": "offer_closed", "n": 1})  # type: ignore[dict-item]
    with pytest.raises(PushPayloadError):
        log_push.send(["t"], bad)
    for data in ({"from": "x"}, {"google.x": "y"}, {"gcm.n": "z"}, {"big": "x" * 5000}):
        with pytest.raises(PushPayloadError):
            message("offer_closed", data, NOW)
    assert log_push.sent == []
    ok = message("offer_closed", {"session_id": "s"}, NOW)
    assert log_push.send(["t"], ok).sent == 1
    assert log_push.sent == [(["t"], {"session_id": "s", "type": "offer_closed"})]


# ---- every kind, to iOS and Android, accepted with its policy --------------------------------


@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_every_kind_reaches_ios_and_android_with_its_policy(fcm, kind):
    standin, fcm_push = fcm
    msg = message(kind, _data(kind), NOW)
    result = fcm_push.send(["ios-phone", "android-phone"], msg, NOW)

    assert (result.sent, result.failed, result.dead) == (2, 0, [])
    assert {m["token"] for m in standin.accepted()} == {"ios-phone", "android-phone"}
    recorded = standin.accepted()[0]
    policy = POLICIES[kind]
    headers = recorded["apns"]["headers"]
    assert recorded["android"]["collapse_key"] == policy.collapse_key
    assert headers["apns-push-type"] == ("alert" if policy.visible else "background")
    assert headers["apns-priority"] == ("10" if policy.visible else "5")
    assert recorded["android"]["priority"] == ("high" if policy.visible else "normal")
    ttl = int(recorded["android"]["ttl"].removesuffix("s"))
    assert int(headers["apns-expiration"]) == int(NOW.timestamp()) + ttl
    assert 0 < ttl <= policy.lifetime.total_seconds()
    if policy.visible:
        notification = recorded["android"]["notification"]
        assert notification["title_loc_key"] == f"push_{kind}_title"
        assert notification["visibility"] == policy.lock_screen.upper()
        alert = recorded["apns"]["payload"]["aps"]["alert"]
        assert alert["title-loc-key"] == f"push_{kind}_title" and alert["loc-key"] == notification["body_loc_key"]
    else:
        assert "notification" not in recorded["android"] and "notification" not in recorded
        assert recorded["apns"]["payload"]["aps"] == {"content-available": 1}


def test_collapse_keys_stay_within_androids_four_per_device():
    assert len({p.collapse_key for p in POLICIES.values()}) <= 4


def test_an_offer_expires_at_its_deadline_on_both_platforms(fcm):
    standin, fcm_push = fcm
    deadline = NOW + timedelta(seconds=120)
    fcm_push.send(["ios-m", "android-m"], message("pairing_offer", _data("pairing_offer"), NOW), NOW)
    for recorded in standin.accepted():
        assert recorded["android"]["ttl"] == "120s"
        assert recorded["apns"]["headers"]["apns-expiration"] == str(int(deadline.timestamp()))
        assert recorded["android"]["notification"]["body_loc_args"] == ["30"]


def test_a_payment_push_expires_at_the_payment_deadline():
    msg = message("session_accepted", _data("session_accepted"), NOW)
    assert msg.expires_at == NOW + timedelta(minutes=10)


# ---- errors -------------------------------------------------------------------------------------


def test_dead_tokens_of_each_kind_are_reported_and_transient_failures_are_counted(fcm):
    standin, fcm_push = fcm
    standin.retry_after = "0"
    tokens = ["ok-1", "dead-1", "ios-mismatch-1", "bad-1", "quota-1", "internal-1", "unavailable-1", "ios-apnsauth-1"]
    result = fcm_push.send(tokens, message("offer_closed", {"session_id": "s"}, NOW), NOW)

    assert result.sent == 1
    assert sorted(result.dead) == ["bad-1", "dead-1", "ios-mismatch-1"]
    assert result.failed == 4
    assert dict(result.errors) == {
        "UNREGISTERED": 1,
        "SENDER_ID_MISMATCH": 1,
        "INVALID_ARGUMENT": 1,
        "QUOTA_EXCEEDED": 1,
        "INTERNAL": 1,
        "UNAVAILABLE": 1,
        "THIRD_PARTY_AUTH_ERROR": 1,
    }


def test_an_invalid_argument_about_the_request_keeps_the_token(fcm, monkeypatch):
    _standin, fcm_push = fcm
    bad = replace(message("offer_closed", {"session_id": "s"}, NOW), data={"type": "x", "from": "y"})
    monkeypatch.setattr(push_module, "check", lambda _msg: None)  # let a bad payload reach FCM
    result = fcm_push.send(["ok-1"], bad, NOW)
    assert (result.dead, dict(result.errors)) == ([], {"INVALID_ARGUMENT": 1})


def test_a_lost_batch_keeps_what_the_other_batches_learned(fcm, monkeypatch):
    _standin, fcm_push = fcm
    monkeypatch.setattr(push_module, "FCM_MAX_TOKENS", 2)
    real = fcm_push._messaging.send_each_for_multicast
    calls = []

    def second_batch_fails(msg, app):
        calls.append(msg)
        if len(calls) == 2:
            raise RuntimeError("credential refresh failed")
        return real(msg, app=app)

    monkeypatch.setattr(fcm_push._messaging, "send_each_for_multicast", second_batch_fails)
    result = fcm_push.send(["dead-1", "ok-1", "ok-2", "ok-3", "mismatch-1"], message("offer_closed", {}, NOW), NOW)
    assert result.dead == ["dead-1", "mismatch-1"]
    assert (result.sent, result.failed, result.errors["RuntimeError"]) == (1, 2, 2)


def test_a_503_is_retried_twice_and_a_long_retry_after_is_capped(fcm, monkeypatch):
    import urllib3.util.retry

    standin, fcm_push = fcm
    standin.fail_all, standin.retry_after = 503, "600"
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    result = fcm_push.send(["ok-1"], message("offer_closed", {}, NOW), NOW)
    assert dict(result.errors) == {"UNAVAILABLE": 1} and result.dead == []
    assert len(standin.requests) == 3  # the send and two retries
    assert slept and max(slept) <= push_module.RETRY_AFTER_CAP


def test_a_429_answer_carries_retry_after():
    with FcmStandIn() as standin:
        body = b'{"message": {"token": "quota-1"}}'
        status, payload, headers = standin.answer("/v1/projects/p/messages:send", {}, body)
    assert (status, payload["error"]["details"][0]["errorCode"], headers) == (
        429,
        "QUOTA_EXCEEDED",
        {"Retry-After": "1"},
    )


def test_the_fcm_http_timeout_is_seconds_not_firebase_admins_120(fcm):
    _, fcm_push = fcm
    assert fcm_push.timeout_seconds == Settings.from_env().push_timeout_seconds
    assert fcm_push.timeout_seconds <= 10


# ---- privacy ------------------------------------------------------------------------------------


def test_a_chat_push_carries_no_text_unless_previews_are_allowed():
    hidden = message("chat_message", _data("chat_message"), NOW)
    assert "preview" not in hidden.data and "sender_name" not in hidden.data and hidden.loc_args == ()
    shown = message("chat_message", _data("chat_message"), NOW, previews=True)
    assert shown.data["preview"] == "hi" and shown.loc_args == ("Customer 12", "hi")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("ab👨‍👩‍👧‍👦cd", 3, "ab👨‍👩‍👧‍👦"),  # a family: one grapheme of seven code points
        ("ab👨‍👩‍👧‍👦cd", 2, "ab"),
        ("👍🏽👍🏽", 1, "👍🏽"),  # skin tone stays on its thumb
        ("🇮🇩🇯🇵", 1, "🇮🇩"),  # flags are pairs of regional indicators
        ("e\u0301e\u0301", 1, "e\u0301"),  # a combining accent stays on its letter
        ("❤️x", 1, "❤️"),  # emoji presentation selector
        ("short", 100, "short"),
    ],
)
def test_previews_are_cut_on_grapheme_boundaries(text, limit, expected):
    assert cut_graphemes(text, limit) == expected


def test_a_long_preview_is_cut_to_whole_graphemes_when_allowed():
    body = "a" * 99 + "👨‍👩‍👧‍👦" * 3
    data = {**_data("chat_message"), "preview": body}
    assert message("chat_message", data, NOW, previews=True).data["preview"] == "a" * 99 + "👨‍👩‍👧‍👦"


def test_a_provider_built_where_a_dropped_one_lived_gets_its_own_firebase_app(monkeypatch):
    # A dropped provider's firebase app stays registered, and CPython hands its address to a
    # later object; every id() answering the same simulates that reuse deterministically.
    monkeypatch.setattr(push_module, "id", lambda _obj: 4242, raising=False)
    settings = replace(Settings.from_env(), push_provider="fcm", fcm_project_id="bestie-test")
    first = FcmPush(settings, endpoint="http://127.0.0.1:9", credential=anonymous_credential())
    second = FcmPush(settings, endpoint="http://127.0.0.1:9", credential=anonymous_credential())
    assert first._app.name != second._app.name
