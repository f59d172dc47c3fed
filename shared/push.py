"""Push adapter: one delivery policy per push kind, the FCM message it makes, and the providers.

docs/push.md is the policy in prose, with the Firebase and Apple pages each rule follows. In short:
a kind is either a visible alert (an offer, a chat message, a payment deadline: Android
`notification` with `title_loc_key`/`body_loc_key`, APNs `alert` with `title-loc-key`/`loc-key`,
`apns-priority: 10`, `apns-push-type: alert`) or a silent status sync (Android priority normal,
`apns-priority: 5`, `apns-push-type: background`, `content-available: 1`). Every message
expires: an offer at its deadline, a payment push at the payment deadline, everything else
after a bounded lifetime. Each kind has one of three collapse keys (`offer`, `chat`,
`session`), within Android's four per device.

Providers (PUSH_PROVIDER): `log` (development: validates, records and logs) and `fcm`
(firebase-admin's `send_each_for_multicast`: FCM HTTP v1, one request per token). Both
validate a message the same way (`check`) before anything is sent.

Tokens FCM reports dead (UNREGISTERED, SENDER_ID_MISMATCH, INVALID_ARGUMENT about the token)
come back in `PushResult.dead` so the caller deletes them; every failure is counted by its FCM
error code in `PushResult.errors`.

firebase_admin is imported only when the `fcm` provider is built, so functions that never
push (heartbeat, sweeps without pushes) do not pay for it at cold start.
"""

from __future__ import annotations

import logging
import math
import threading
import unicodedata
import uuid
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.config import Settings
from shared.context import AppContext
from shared.errors import ConfigError

log = logging.getLogger(__name__)

FCM_MAX_TOKENS = 500  # send_each_for_multicast's limit per call
MAX_DATA_BYTES = 4096  # keys plus values; https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
MAX_COLLAPSE_BYTES = 64  # apns-collapse-id's limit (Apple), applied to Android's collapse_key too
MAX_TTL_SECONDS = 2_419_200  # 28 days, FCM's longest
PREVIEW_GRAPHEMES = 100  # a chat preview, when previews are allowed
# Reserved data keys: https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages
_RESERVED_KEYS = ("from", "message_type", "gcm")
_RESERVED_PREFIXES = ("google", "gcm.")
# FCM error codes after which a token never works again (Firebase's token management guide:
# https://firebase.google.com/docs/cloud-messaging/manage-tokens#detect-invalid-token-responses-from-the-fcm-backend).
DEAD_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH", "INVALID_ARGUMENT"})


class PushPayloadError(ValueError):
    """A message FCM would refuse (reserved key, non-string value, too big, unknown kind)."""


@dataclass(frozen=True)
class Policy:
    """How one kind of push is delivered (docs/push.md)."""

    visible: bool  # a user-visible alert; else a silent status sync
    collapse_key: str  # one of three, within Android's four per device
    lifetime: timedelta  # the longest FCM and APNs keep it for an offline device
    deadline_field: str | None = None  # a data field holding an earlier expiry (ISO 8601)
    lock_screen: str = "public"  # Android notification visibility: "public" or "private"


_STATUS_SYNC = Policy(visible=False, collapse_key="session", lifetime=timedelta(minutes=15))

POLICIES: dict[str, Policy] = {
    "pairing_offer": Policy(True, "offer", timedelta(minutes=5), deadline_field="offer_expires_at"),
    "session_accepted": Policy(True, "session", timedelta(minutes=30), deadline_field="payment_deadline_at"),
    "chat_message": Policy(True, "chat", timedelta(hours=1), lock_screen="private"),
    "offer_closed": _STATUS_SYNC,
    "session_active": _STATUS_SYNC,
    "session_extended": _STATUS_SYNC,
    "session_ended": _STATUS_SYNC,
    "session_expired": _STATUS_SYNC,
    "session_rerouted": _STATUS_SYNC,
}


@dataclass(frozen=True)
class Message:
    """One push, ready for any provider: its kind's policy, data and absolute expiry."""

    kind: str
    data: dict[str, str]
    expires_at: datetime
    loc_key: str = ""  # the alert's body text key (visible kinds); the title is push_<kind>_title
    loc_args: tuple[str, ...] = ()
    thread: str | None = None  # groups and replaces shown notifications (Android tag, APNs thread-id)

    @property
    def policy(self) -> Policy:
        return POLICIES[self.kind]

    @property
    def title_loc_key(self) -> str:
        return f"push_{self.kind}_title"

    def ttl_seconds(self, now: datetime) -> int:
        """Whole seconds left until the expiry (0 when already past)."""
        return max(0, math.floor(self.expires_at.timestamp()) - math.floor(now.timestamp()))


def message(kind: str, data: Mapping[str, str], now: datetime, *, previews: bool = False) -> Message:
    """The message of `kind` carrying `data`, by the kind's policy (raises PushPayloadError).

    A chat message's `preview` and `sender_name` stay in it only when `previews` is on
    (PUSH_MESSAGE_PREVIEW), and the preview is cut to whole graphemes.
    """
    policy = POLICIES.get(kind)
    if policy is None:
        raise PushPayloadError(f"unknown push kind {kind!r}")
    payload = {**dict(data), "type": kind}
    expires_at = now + policy.lifetime
    deadline = _parse_time(payload.get(policy.deadline_field or "", ""))
    if deadline is not None:
        expires_at = min(expires_at, deadline)
    loc_key, thread = f"push_{kind}_body", None
    loc_args: tuple[str, ...] = ()
    if kind == "pairing_offer":
        loc_args = (payload.get("duration_minutes", ""),)
    if kind == "chat_message":
        thread = f"chat:{payload.get('session_id', '')}"
        preview = cut_graphemes(payload.pop("preview", ""), PREVIEW_GRAPHEMES)
        sender = payload.pop("sender_name", "")
        if previews:
            payload.update(preview=preview, sender_name=sender)
            loc_key, loc_args = "push_chat_message_preview_body", (sender, preview)
    built = Message(kind, payload, expires_at, loc_key if policy.visible else "", loc_args, thread)
    check(built)
    return built


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check(msg: Message) -> None:
    """Refuse what FCM refuses: reserved or non-string data, over 4,096 bytes, long collapse keys."""
    if msg.kind not in POLICIES:
        raise PushPayloadError(f"unknown push kind {msg.kind!r}")
    size = 0
    for key, value in msg.data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise PushPayloadError(f"push data {key!r} must be a string")
        lowered = key.lower()
        if lowered in _RESERVED_KEYS or lowered.startswith(_RESERVED_PREFIXES):
            raise PushPayloadError(f"push data key {key!r} is reserved by FCM")
        size += len(key.encode()) + len(value.encode())
    size += sum(len(arg.encode()) for arg in msg.loc_args)
    if size > MAX_DATA_BYTES:
        raise PushPayloadError(f"push payload is {size} bytes, FCM's limit is {MAX_DATA_BYTES}")
    for key in (msg.policy.collapse_key, msg.thread or ""):
        if len(key.encode()) > MAX_COLLAPSE_BYTES:
            raise PushPayloadError(f"collapse key {key!r} is longer than {MAX_COLLAPSE_BYTES} bytes")


# ---- previews ---------------------------------------------------------------------------------

_ZWJ = "\u200d"


def _extends(ch: str) -> bool:
    """A code point that never starts a grapheme (UAX #29 Extend/SpacingMark/ZWJ, as chat text has them)."""
    cp = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or ch in (_ZWJ, "\u200c")
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors (emoji vs text style)
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # tag characters (subdivision flags)
        or 0x1160 <= cp <= 0x11FF  # Hangul medial vowels and final consonants
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _boundary(text: str, i: int) -> bool:
    """Whether a grapheme cluster may end before text[i] (UAX #29 GB9, GB11, GB12/13 in short)."""
    if i <= 0 or i >= len(text):
        return True
    if _extends(text[i]) or text[i - 1] == _ZWJ:
        return False
    if _regional(text[i]) and _regional(text[i - 1]):
        run = 0
        while i - run - 1 >= 0 and _regional(text[i - run - 1]):
            run += 1
        return run % 2 == 0  # flags are pairs: break only after an even number
    return True


def cut_graphemes(text: str, limit: int) -> str:
    """At most `limit` user-perceived characters of `text`, never half an emoji or accent."""
    count, i = 0, 0
    while i < len(text):
        if _boundary(text, i):
            if count == limit:
                return text[:i]
            count += 1
        i += 1
    return text


# ---- providers --------------------------------------------------------------------------------


@dataclass
class PushResult:
    """What happened to one fan-out."""

    sent: int = 0
    failed: int = 0
    dead: list[str] = field(default_factory=list)  # tokens to delete
    errors: Counter[str] = field(default_factory=Counter)  # FCM error code -> tokens


class PushProvider(Protocol):
    def send(self, tokens: list[str], msg: Message, now: datetime | None = None) -> PushResult:
        """Send `msg` to every token; `now` fixes the remaining lifetime (default: the wall clock)."""
        ...


class LogPush:
    """Development provider: validates like FcmPush, then records and logs instead of sending."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], dict[str, str]]] = []
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    def send(self, tokens: list[str], msg: Message, now: datetime | None = None) -> PushResult:
        check(msg)
        with self._lock:
            self.sent.append((list(tokens), dict(msg.data)))
            self.messages.append(msg)
        log.info("push (log provider)", extra={"push_type": msg.kind, "recipients": len(tokens)})
        return PushResult(sent=len(tokens))


def _fcm_code(exc: BaseException) -> str:
    """The FCM error code of a failed send (FcmError detail), else the platform code."""
    response = getattr(exc, "http_response", None)
    if response is not None:
        try:
            details = response.json()["error"].get("details", [])
        except (ValueError, KeyError, TypeError, AttributeError):
            details = []
        for detail in details:
            if str(detail.get("@type", "")).endswith("FcmError") and detail.get("errorCode"):
                return str(detail["errorCode"])
    code = getattr(exc, "code", None)
    return str(code).upper() if code else type(exc).__name__


def _about_the_token(exc: BaseException) -> bool:
    """An INVALID_ARGUMENT about the token, not the request: FCM names a bad field with a
    google.rpc.BadRequest detail, and answers a malformed token with an FcmError alone
    (https://firebase.google.com/docs/cloud-messaging/error-codes, both examples)."""
    response = getattr(exc, "http_response", None)
    try:
        details = response.json()["error"].get("details", []) if response is not None else []
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    fields = [
        v.get("field", "")
        for d in details
        if str(d.get("@type", "")).endswith("BadRequest")
        for v in d.get("fieldViolations", [])
    ]
    return not fields or all(f == "message.token" for f in fields)


RETRY_AFTER_CAP = 5.0  # seconds a 429/503 Retry-After may hold a push worker, per retry


def _fcm_retry() -> Any:
    """urllib3 retries for FCM: 500 and 503 twice, honouring Retry-After up to RETRY_AFTER_CAP
    (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode: UNAVAILABLE, INTERNAL)."""
    from urllib3.util.retry import Retry

    class CappedRetry(Retry):
        def get_retry_after(self, response: Any) -> float | None:
            after = super().get_retry_after(response)
            return None if after is None else min(after, RETRY_AFTER_CAP)

    return CappedRetry(
        connect=1,
        read=1,
        status=2,
        status_forcelist=[500, 503],
        allowed_methods=None,
        raise_on_status=False,
        backoff_factor=0.5,
    )


class FcmPush:
    """Firebase Cloud Messaging through firebase-admin."""

    def __init__(self, settings: Settings, *, endpoint: str | None = None, credential: Any = None) -> None:
        import firebase_admin
        import requests.adapters
        from firebase_admin import credentials, messaging

        self._messaging = messaging
        # firebase-admin waits 120 s per HTTP attempt unless httpTimeout is set (it retries 500
        # and 503 up to four times besides); a push never needs that long.
        options: dict[str, Any] = {"httpTimeout": settings.push_timeout_seconds}
        if settings.fcm_project_id:
            options["projectId"] = settings.fcm_project_id
        # A fresh name per instance: id(self) is reused after garbage collection, and firebase
        # refuses a second app under a name still registered.
        name = f"bestie-push-{uuid.uuid4().hex}"
        self._app = firebase_admin.initialize_app(credential or credentials.ApplicationDefault(), options, name=name)
        service = messaging._get_messaging_service(self._app)
        if endpoint:
            # firebase-admin has no public endpoint option; tests point the real client at a
            # loopback stand-in of the FCM v1 send endpoint.
            service._fcm_url = endpoint.rstrip("/") + f"/v1/projects/{self._app.project_id}/messages:send"
        # firebase-admin retries 500/503 four times and sleeps whatever Retry-After says; a
        # worker thread must not sleep minutes, so two retries, each wait at most RETRY_AFTER_CAP.
        adapter = requests.adapters.HTTPAdapter(pool_connections=10, pool_maxsize=100, max_retries=_fcm_retry())
        for prefix in ("https://fcm.googleapis.com", *([endpoint] if endpoint else [])):
            service._client.session.mount(prefix, adapter)

    @property
    def timeout_seconds(self) -> float:
        """The HTTP timeout firebase-admin's messaging client uses."""
        return float(self._messaging._get_messaging_service(self._app)._client.timeout)

    def build(self, tokens: list[str], msg: Message, now: datetime) -> Any:
        """The firebase-admin multicast message for these tokens, by the kind's policy."""
        m, policy = self._messaging, msg.policy
        expiry = str(math.floor(msg.expires_at.timestamp()))
        if policy.visible:
            android_notification = m.AndroidNotification(
                title_loc_key=msg.title_loc_key,
                body_loc_key=msg.loc_key,
                body_loc_args=list(msg.loc_args) or None,
                tag=msg.thread,
                visibility=policy.lock_screen,
                default_sound=True,
            )
            alert = m.ApsAlert(
                title_loc_key=msg.title_loc_key, loc_key=msg.loc_key, loc_args=list(msg.loc_args) or None
            )
            aps = m.Aps(alert=alert, sound="default", thread_id=msg.thread)
            headers = {"apns-priority": "10", "apns-push-type": "alert"}
        else:
            android_notification = None
            aps = m.Aps(content_available=True)
            headers = {"apns-priority": "5", "apns-push-type": "background"}
        # Apple keeps one per collapse id, without Android's four-key limit: per chat, per kind else.
        headers.update({"apns-expiration": expiry, "apns-collapse-id": msg.thread or policy.collapse_key})
        with warnings.catch_warnings():
            # Devices register FCM registration tokens (devices.fcm_token); firebase-admin now
            # prefers installation ids (fids) and warns on `tokens`, which still works.
            warnings.simplefilter("ignore", DeprecationWarning)
            return m.MulticastMessage(
                tokens=tokens,
                data=msg.data,
                android=m.AndroidConfig(
                    priority="high" if policy.visible else "normal",
                    collapse_key=policy.collapse_key,
                    ttl=msg.ttl_seconds(now),
                    notification=android_notification,
                ),
                apns=m.APNSConfig(headers=headers, payload=m.APNSPayload(aps=aps)),
            )

    def send(self, tokens: list[str], msg: Message, now: datetime | None = None) -> PushResult:
        check(msg)
        now = now or datetime.now(UTC)
        result = PushResult()
        for start in range(0, len(tokens), FCM_MAX_TOKENS):
            batch = tokens[start : start + FCM_MAX_TOKENS]
            try:
                response = self._messaging.send_each_for_multicast(self.build(batch, msg, now), app=self._app)
            except Exception as exc:  # one batch lost (e.g. a credential refresh failed); the rest go on
                code = _fcm_code(exc)
                result.failed += len(batch)
                result.errors[code] += len(batch)
                continue
            for token, resp in zip(batch, response.responses, strict=True):
                if resp.success:
                    result.sent += 1
                    continue
                code = _fcm_code(resp.exception)
                result.errors[code] += 1
                if code in DEAD_CODES and (code != "INVALID_ARGUMENT" or _about_the_token(resp.exception)):
                    result.dead.append(token)
                else:
                    result.failed += 1
        return result


def build_provider(settings: Settings) -> PushProvider:
    """The provider PUSH_PROVIDER names."""
    if settings.push_provider == "log":
        return LogPush()
    if settings.push_provider == "fcm":
        return FcmPush(settings)
    raise ConfigError(f"PUSH_PROVIDER must be 'log' or 'fcm', got {settings.push_provider!r}")


def provider(ctx: AppContext) -> PushProvider:
    """The context's push provider, built once."""
    built: PushProvider = ctx.singleton("push", lambda: build_provider(ctx.settings))
    return built
