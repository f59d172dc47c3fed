"""Push adapter: data messages to device tokens through one interface.

Providers (PUSH_PROVIDER): `log` (development: logs what would be sent) and `fcm`, which
runs firebase-admin's `messaging.send_each_for_multicast` (FCM HTTP v1 API, one request per
token, fanned out by firebase-admin). Tokens FCM reports as UNREGISTERED (app uninstalled,
token rotated) come back in `PushResult.unregistered` so the caller deletes them.

firebase_admin is imported only when the `fcm` provider is built, so functions that never
push (heartbeat, sweeps without pushes) do not pay for it at cold start.
"""

from __future__ import annotations

import logging
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.config import Settings
from shared.context import AppContext
from shared.errors import ConfigError

log = logging.getLogger(__name__)

FCM_MAX_TOKENS = 500  # send_each_for_multicast's limit per call


@dataclass
class PushResult:
    """What happened to one fan-out."""

    sent: int = 0
    failed: int = 0
    unregistered: list[str] = field(default_factory=list)


class PushProvider(Protocol):
    def send(self, tokens: list[str], data: dict[str, str], collapse_key: str | None = None) -> PushResult:
        """Send one data message to every token (collapsed per `collapse_key` when given)."""
        ...


class LogPush:
    """Development provider: records and logs messages instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], dict[str, str]]] = []
        self.collapse_keys: list[str | None] = []
        self._lock = threading.Lock()

    def send(self, tokens: list[str], data: dict[str, str], collapse_key: str | None = None) -> PushResult:
        with self._lock:
            self.sent.append((list(tokens), dict(data)))
            self.collapse_keys.append(collapse_key)
        log.info("push (log provider)", extra={"push_type": data.get("type"), "recipients": len(tokens)})
        return PushResult(sent=len(tokens))


class FcmPush:
    """Firebase Cloud Messaging through firebase-admin."""

    def __init__(self, settings: Settings, *, endpoint: str | None = None, credential: Any = None) -> None:
        import firebase_admin
        from firebase_admin import credentials, messaging

        self._messaging = messaging
        options = {"projectId": settings.fcm_project_id} if settings.fcm_project_id else None
        # A fresh name per instance: id(self) is reused after garbage collection, and firebase
        # refuses a second app under a name still registered.
        name = f"bestie-push-{uuid.uuid4().hex}"
        self._app = firebase_admin.initialize_app(credential or credentials.ApplicationDefault(), options, name=name)
        if endpoint:
            # firebase-admin has no public endpoint option; tests point the real client at a
            # loopback stand-in of the FCM v1 send endpoint.
            service = messaging._get_messaging_service(self._app)
            service._fcm_url = endpoint.rstrip("/") + f"/v1/projects/{self._app.project_id}/messages:send"

    def send(self, tokens: list[str], data: dict[str, str], collapse_key: str | None = None) -> PushResult:
        result = PushResult()
        # Collapsed messages replace an undelivered older one of the same key on the device
        # (Android collapse_key, APNs apns-collapse-id; both at most 64 bytes).
        apns_headers = {"apns-priority": "10", **({"apns-collapse-id": collapse_key} if collapse_key else {})}
        messaging = self._messaging
        for start in range(0, len(tokens), FCM_MAX_TOKENS):
            batch = tokens[start : start + FCM_MAX_TOKENS]
            with warnings.catch_warnings():
                # Devices register FCM registration tokens (SPEC: devices.fcm_token); firebase-admin
                # now prefers installation ids (fids) and warns on `tokens`, which still works.
                warnings.simplefilter("ignore", DeprecationWarning)
                message = messaging.MulticastMessage(
                    tokens=batch,
                    data=data,
                    android=messaging.AndroidConfig(priority="high", collapse_key=collapse_key),
                    apns=messaging.APNSConfig(
                        headers=apns_headers,
                        payload=messaging.APNSPayload(aps=messaging.Aps(content_available=True)),
                    ),
                )
            response = messaging.send_each_for_multicast(message, app=self._app)
            for token, resp in zip(batch, response.responses, strict=True):
                if resp.success:
                    result.sent += 1
                elif isinstance(resp.exception, messaging.UnregisteredError):
                    result.unregistered.append(token)
                else:
                    result.failed += 1
                    log.warning("push failed", extra={"error": type(resp.exception).__name__})
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
