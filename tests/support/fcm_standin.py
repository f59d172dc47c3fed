"""A loopback stand-in for the FCM HTTP v1 send endpoint, as strict as FCM documents itself.

It checks each `projects.messages:send` request the way Google and Apple document it and
answers like FCM: 200 with a message name, or an error body whose `details` carry an FcmError
code (token problems) or a google.rpc.BadRequest field violation (request problems).

Request checks (a failure is 400 INVALID_ARGUMENT naming the field):
- exactly one target, `message.token`;
- `data` values are strings; no reserved key (`from`, `message_type`, `gcm`, anything starting
  with `google` or `gcm.`); keys plus values at most 4,096 bytes;
  https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode (INVALID_ARGUMENT: "message
  too big", "invalid data key") and
  https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages (Message.data);
- `android.ttl` a duration string ("120s", "3.5s") from 0 to 2,419,200 s;
  https://firebase.google.com/docs/cloud-messaging/customize-messages/setting-message-lifespan;
- `android.priority` normal or high; collapse keys (Android and `apns-collapse-id`) at most
  64 bytes (Apple's limit; applied to both);
- to an iOS token, a message without a visible alert must go at `apns-priority: 5`, or FCM
  rejects it with INVALID_ARGUMENT:
  https://firebase.google.com/docs/cloud-messaging/customize-messages/setting-message-priority;
- to an iOS token, `apns-push-type` must match the payload (`alert` with an alert, `background`
  with content-available only); Apple: "Sending notification requests to APNs",
  https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns.
  FCM infers a missing push type; this stand-in refuses one (the project always sets it);
- `apns-expiration` a UNIX time in seconds, `apns-priority` 5 or 10, header values strings.

Tokens (the stand-in's convention): `ios-...` is an Apple device, anything else Android. After
an optional `ios-`, the token's first word picks the answer:
`dead` UNREGISTERED (404), `mismatch` SENDER_ID_MISMATCH (403), `bad` a malformed token
(400 INVALID_ARGUMENT, FcmError only), `quota` QUOTA_EXCEEDED (429 with Retry-After),
`internal` INTERNAL (500), `unavailable` UNAVAILABLE (503), `apnsauth` THIRD_PARTY_AUTH_ERROR
(401). `delay` (seconds) slows every answer; `hold` (an Event) keeps every answer until set;
`fail_all` answers every request with one status.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.context import AppContext
from shared.push import FcmPush

MAX_DATA_BYTES = 4096
MAX_TTL_SECONDS = 2_419_200
MAX_COLLAPSE_BYTES = 64
_DURATION = re.compile(r"^(\d+)(\.\d{1,9})?s$")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# token word -> (HTTP status, gRPC status, FCM error code), from the ErrorCode reference above.
TOKEN_ERRORS: dict[str, tuple[int, str, str]] = {
    "dead": (404, "NOT_FOUND", "UNREGISTERED"),
    "mismatch": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
    "bad": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    "quota": (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
    "internal": (500, "INTERNAL", "INTERNAL"),
    "unavailable": (503, "UNAVAILABLE", "UNAVAILABLE"),
    "apnsauth": (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
}
_GRPC_BY_STATUS = {status: grpc for status, grpc, _ in TOKEN_ERRORS.values()}


class Rejected(Exception):
    """A request FCM refuses as INVALID_ARGUMENT, naming the field."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(description)
        self.field = field
        self.description = description


def is_ios(token: str) -> bool:
    """The stand-in's platform convention."""
    return token.startswith("ios-")


def fcm_error(status: int, grpc_status: str, fcm_code: str, message: str | None = None) -> dict[str, Any]:
    detail = {"@type": _FCM_ERROR, "errorCode": fcm_code}
    return {"error": {"code": status, "message": message or fcm_code, "status": grpc_status, "details": [detail]}}


def bad_request(field: str, description: str) -> dict[str, Any]:
    violation = {"field": field, "description": description}
    detail = {"@type": _BAD_REQUEST, "fieldViolations": [violation]}
    return {"error": {"code": 400, "message": description, "status": "INVALID_ARGUMENT", "details": [detail]}}


def _check_data(data: Any) -> None:
    if not isinstance(data, dict):
        raise Rejected("message.data", "data must be a map of strings")
    size = 0
    for i, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            raise Rejected(f"message.data[{i}].value", f"Invalid value at 'message.data[{i}].value' (TYPE_STRING)")
        lowered = key.lower()
        if lowered in ("from", "message_type", "gcm") or lowered.startswith(("google", "gcm.")):
            raise Rejected(f"message.data[{i}].key", f"Invalid data key: {key} is reserved")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_DATA_BYTES:
        raise Rejected("message.data", f"Message is too big: {size} bytes of data, limit {MAX_DATA_BYTES}")


def _check_collapse(field: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or len(value.encode()) > MAX_COLLAPSE_BYTES):
        raise Rejected(field, f"collapse key longer than {MAX_COLLAPSE_BYTES} bytes")


def _check_android(android: dict[str, Any]) -> None:
    ttl = android.get("ttl")
    if ttl is not None:
        match = _DURATION.match(str(ttl))
        if not match or int(match.group(1)) > MAX_TTL_SECONDS:
            raise Rejected("message.android.ttl", f"Invalid TTL {ttl!r}: a duration from 0 to {MAX_TTL_SECONDS}s")
    if str(android.get("priority", "normal")).lower() not in ("normal", "high"):
        raise Rejected("message.android.priority", "priority must be normal or high")
    _check_collapse("message.android.collapse_key", android.get("collapse_key"))


def _has_alert(message: dict[str, Any], aps: dict[str, Any]) -> bool:
    return bool(message.get("notification") or aps.get("alert") or aps.get("sound") or "badge" in aps)


def _check_apns(message: dict[str, Any], ios: bool) -> None:
    apns = message.get("apns") or {}
    headers = apns.get("headers") or {}
    if any(not isinstance(v, str) for v in headers.values()):
        raise Rejected("message.apns.headers", "APNs header values must be strings")
    priority = headers.get("apns-priority")
    if priority is not None and priority not in ("5", "10"):
        raise Rejected("message.apns.headers", f"apns-priority {priority!r} is not 5 or 10")
    expiration = headers.get("apns-expiration")
    if expiration is not None and not expiration.isdigit():
        raise Rejected("message.apns.headers", "apns-expiration must be a UNIX time in seconds")
    _check_collapse("message.apns.headers", headers.get("apns-collapse-id"))
    if not ios:
        return
    aps = (apns.get("payload") or {}).get("aps") or {}
    alert = _has_alert(message, aps)
    if not alert and priority != "5":
        raise Rejected("message.apns.headers", "data messages to Apple devices must be sent at priority 5")
    push_type = headers.get("apns-push-type")
    if push_type is None:
        raise Rejected("message.apns.headers", "apns-push-type is missing")
    if push_type != ("alert" if alert else "background"):
        raise Rejected("message.apns.headers", f"apns-push-type {push_type!r} does not match the payload")
    if not alert and aps.get("content-available") != 1:
        raise Rejected("message.apns.payload", "a background push needs content-available: 1")


def check(message: dict[str, Any]) -> str:
    """The message's token, once the request passes every documented check; else Rejected."""
    targets = [k for k in ("token", "topic", "condition") if k in message]
    if targets != ["token"] or not isinstance(message["token"], str) or not message["token"]:
        raise Rejected("message.token", "exactly one registration token is required")
    token: str = message["token"]
    _check_data(message.get("data", {}))
    _check_android(message.get("android") or {})
    _check_apns(message, is_ios(token))
    return token


class FcmStandIn:
    """The stand-in server; `requests`, `messages` and `answers` record what firebase-admin sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []  # {token, status, message} per request
        self.delay = 0.0
        self.fail_all: int | None = None
        self.retry_after = "1"
        self.hold: threading.Event | None = None  # when set to an unset Event, answers wait for it
        self.waiting = 0  # requests waiting on `hold` now
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload, extra = standin.answer(self.path, dict(self.headers), body)
                if standin.hold is not None and not standin.hold.is_set():
                    with standin._lock:
                        standin.waiting += 1
                    standin.hold.wait(10)
                    with standin._lock:
                        standin.waiting -= 1
                if standin.delay:
                    time.sleep(standin.delay)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (its timeout)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        """FCM's answer to one send request: (status, JSON body, extra headers)."""
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
        token, message = "", None
        try:
            if not re.fullmatch(r"/v1/projects/[^/]+/messages:send", path):
                return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": path}}, {}
            message = json.loads(body)["message"]
            token = str(message.get("token", ""))
            check(message)
            status, payload = self._token_answer(token)
        except Rejected as exc:
            status, payload = 400, bad_request(exc.field, exc.description)
        except (ValueError, KeyError, TypeError):
            status, payload = 400, bad_request("message", "Invalid JSON payload received")
        if self.fail_all is not None:
            status = self.fail_all
            payload = fcm_error(status, _GRPC_BY_STATUS.get(status, "UNKNOWN"), _GRPC_BY_STATUS.get(status, "UNKNOWN"))
        with self._lock:
            self.answers.append({"token": token, "status": status, "message": message})
        extra = {"Retry-After": self.retry_after} if status in (429, 503) else {}
        return status, payload, extra

    def _token_answer(self, token: str) -> tuple[int, Any]:
        word = token.removeprefix("ios-").split("-", 1)[0]
        if word in TOKEN_ERRORS:
            status, grpc_status, code = TOKEN_ERRORS[word]
            text = "The registration token is not a valid FCM registration token" if word == "bad" else None
            return status, fcm_error(status, grpc_status, code, text)
        return 200, {"name": f"projects/bestie-test/messages/{abs(hash(token))}"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def accepted(self) -> list[dict[str, Any]]:
        """The messages FCM would deliver (answered 200)."""
        with self._lock:
            return [a["message"] for a in self.answers if a["status"] == 200]

    def statuses(self) -> dict[str, int]:
        """The last status answered per token."""
        with self._lock:
            return {a["token"]: a["status"] for a in self.answers}

    def __enter__(self) -> FcmStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def anonymous_credential() -> Any:
    """A firebase-admin credential with a fixed loopback bearer token that refreshes without a network.

    FCM answers THIRD_PARTY_AUTH_ERROR with 401, on which google-auth refreshes the credential
    and retries once, as it would with a real service account.
    """
    import google.auth.credentials
    from firebase_admin import credentials

    class Loopback(google.auth.credentials.Credentials):
        def __init__(self) -> None:
            super().__init__()
            self.token = "loopback-only"

        def refresh(self, request: Any) -> None:
            self.token = "loopback-only"

    class Anonymous(credentials.Base):
        def get_credential(self) -> Any:
            return Loopback()

    return Anonymous()


@contextmanager
def fcm_installed(ctx: AppContext) -> Iterator[FcmStandIn]:
    """An FCM stand-in, and `ctx` sending its pushes there through the real firebase-admin code."""
    with FcmStandIn() as standin:
        settings = dataclasses.replace(ctx.settings, push_provider="fcm", fcm_project_id="bestie-test")
        ctx.singleton("push", lambda: FcmPush(settings, endpoint=standin.url, credential=anonymous_credential()))
        yield standin
