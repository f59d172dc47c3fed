"""SMS providers for one-time codes, behind one interface (`SmsProvider.send_otp`).

- `log` (development): logs the code and records it as the phone's last code, which the
  test-only GET /internal/_test/last-otp reads, so app end-to-end tests need no real SMS.
- `fazpass`: Fazpass's HTTP API (`POST {FAZPASS_BASE_URL}/v1/otp/send` with the merchant key
  as bearer and our own code; see docs/auth.md). A non-2xx answer, a `status: false` body, a
  timeout or a connection error is a 502 OTP_PROVIDER_ERROR.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import requests

from shared import oplog, phones
from shared.context import AppContext
from shared.errors import BadGateway, ConfigError
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)


class ProviderError(BadGateway):
    """Raised when the SMS provider did not accept the message."""

    code = "OTP_PROVIDER_ERROR"
    default_message = "the SMS provider did not accept the message, try again"


class SmsProvider(Protocol):
    def send_otp(self, phone_e164: str, code: str, ttl_seconds: int) -> str | None:
        """Send `code` to the phone; return the provider's message reference."""
        ...


class LogSms:
    """Development provider: the code goes to the log and to `last_otp` (TTL = the code's)."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    def send_otp(self, phone_e164: str, code: str, ttl_seconds: int) -> str | None:
        # The `log` provider exists to show the code; it is refused by the deploy tooling.
        log.info("OTP for %s: %s (log provider)", phone_e164, code)
        try:
            self._ctx.valkey.set(self._ctx.keys.last_otp(phone_e164), code, ex=ttl_seconds)
        except VALKEY_ERRORS as exc:
            log.warning("could not record the last OTP", extra={"error": type(exc).__name__})
        oplog.emit("sms.sent", provider="log", country=phones.region(phone_e164))
        return "log"


def last_code(ctx: AppContext, phone_e164: str) -> str | None:
    """The last code the log provider sent to a phone (test/dev route)."""
    value = ctx.valkey.get(ctx.keys.last_otp(phone_e164))
    return str(value) if value is not None else None


class FazpassSms:
    """Fazpass over HTTPS with a pooled, thread-safe requests session."""

    def __init__(self, base_url: str, merchant_key: str, gateway_key: str, timeout: float) -> None:
        self._url = base_url.rstrip("/") + "/v1/otp/send"
        self._merchant_key = merchant_key
        self._gateway_key = gateway_key
        self._timeout = timeout
        self._session = requests.Session()

    def send_otp(self, phone_e164: str, code: str, ttl_seconds: int) -> str | None:
        body = {"phone": phone_e164.lstrip("+"), "otp": code, "gateway_key": self._gateway_key}
        try:
            resp = self._session.post(
                self._url,
                json=body,
                headers={"Authorization": f"Bearer {self._merchant_key}"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            oplog.emit("sms.failed", provider="fazpass", reason=type(exc).__name__)
            raise ProviderError() from exc
        payload = _json_or_none(resp)
        if not 200 <= resp.status_code < 300 or (isinstance(payload, dict) and payload.get("status") is False):
            oplog.emit("sms.failed", provider="fazpass", reason=f"refused_{resp.status_code}")
            raise ProviderError()
        oplog.emit("sms.sent", provider="fazpass", country=phones.region(phone_e164))
        data = payload.get("data") if isinstance(payload, dict) else None
        ref = data.get("id") if isinstance(data, dict) else None
        return str(ref) if ref is not None else None


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def provider(ctx: AppContext) -> SmsProvider:
    """The configured provider (OTP_PROVIDER), built once per context."""
    name = ctx.settings.otp_provider
    if name == "log":
        return ctx.singleton("sms", lambda: LogSms(ctx))  # type: ignore[no-any-return]
    if name == "fazpass":
        s = ctx.settings
        if not s.fazpass_merchant_key or not s.fazpass_gateway_key:
            raise ConfigError("OTP_PROVIDER=fazpass needs FAZPASS_MERCHANT_KEY and FAZPASS_GATEWAY_KEY")
        return ctx.singleton(  # type: ignore[no-any-return]
            "sms",
            lambda: FazpassSms(
                s.fazpass_base_url, s.fazpass_merchant_key or "", s.fazpass_gateway_key or "", s.fazpass_timeout_seconds
            ),
        )
    raise ConfigError(f"OTP_PROVIDER must be 'log' or 'fazpass', got {name!r}")
