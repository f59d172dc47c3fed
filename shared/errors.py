"""One error hierarchy for the whole backend.

Services raise these from any depth; `shared.http` maps them to the JSON body
`{"error": {"code", "message", ...extra}}` in exactly one place. Anything that is not an
`ApiError` becomes a logged 500 INTERNAL with no details leaked.
"""

from __future__ import annotations

from typing import Any


class ConfigError(RuntimeError):
    """Raised at cold start when the environment is missing or malformed."""


class ApiError(Exception):
    """An error the client should see: HTTP status, stable code, message, extra fields."""

    status = 500
    code = "INTERNAL"
    default_message = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        if status:
            self.status = status
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """Return the JSON error body."""
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class BadRequest(ApiError):
    status, code, default_message = 400, "BAD_REQUEST", "bad request"


class ValidationFailed(BadRequest):
    """A field of the request is missing or malformed; `field` names it."""

    code, default_message = "VALIDATION_FAILED", "validation failed"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class Unauthorized(ApiError):
    status, code, default_message = 401, "UNAUTHORIZED", "authentication required"

    def __init__(self, message: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(message, **kw)


class Forbidden(ApiError):
    status, code, default_message = 403, "FORBIDDEN", "forbidden"


class NotFound(ApiError):
    status, code, default_message = 404, "NOT_FOUND", "not found"


class MethodNotAllowed(ApiError):
    status, code, default_message = 405, "METHOD_NOT_ALLOWED", "method not allowed"


class Conflict(ApiError):
    status, code, default_message = 409, "CONFLICT", "conflict"


class PayloadTooLarge(ApiError):
    status, code, default_message = 413, "PAYLOAD_TOO_LARGE", "request body too large"


class UnsupportedMediaType(ApiError):
    status, code, default_message = 415, "UNSUPPORTED_MEDIA_TYPE", "expected Content-Type: application/json"


class RateLimited(ApiError):
    """Too many requests; `retry_after_seconds` tells when to come back."""

    status, code, default_message = 429, "RATE_LIMITED", "too many requests"

    def __init__(self, retry_after_seconds: int, message: str | None = None, code: str | None = None) -> None:
        retry = max(1, int(retry_after_seconds))
        super().__init__(message, code=code, headers={"Retry-After": str(retry)}, retry_after_seconds=retry)


class BadGateway(ApiError):
    status, code, default_message = 502, "BAD_GATEWAY", "upstream provider failed"


class ServiceUnavailable(ApiError):
    status, code, default_message = 503, "SERVICE_UNAVAILABLE", "service temporarily unavailable"
