"""Structured JSON logs in the shape Cloud Logging parses from stdout.

Each line is one JSON object with `severity`, `message`, `logging.googleapis.com/trace`
(from X-Cloud-Trace-Context, or the W3C traceparent) and `request_id`, plus any
`extra={...}` fields; the access line carries `httpRequest`, and every line `serviceContext`
(the function and the release version, shared.release). Field names that look like
secrets are masked, so a careless `extra` cannot leak a token or password.
See https://cloud.google.com/logging/docs/structured-logging (special JSON fields) and
https://cloud.google.com/run/docs/logging#correlate-logs (the trace header Cloud Run adds).

`configure()` runs when `shared.context` is imported, which every entry point module does
first: the runtime loads main.py and nothing else, so a handler installed anywhere later
(as `make dev` used to) leaves a deployed function with no handler at all, dropping INFO
lines and printing warnings as bare text.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from shared import release

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

_SECRET_WORDS = ("password", "secret", "token", "authorization", "cookie", "code", "otp", "key")
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_HEX = frozenset("0123456789abcdefABCDEF")
# Fields Cloud Logging lifts out of the JSON payload; never masked (httpRequest holds no secret).
_SPECIAL = frozenset({"httpRequest", "logging.googleapis.com/trace", "serviceContext"})


def trace_id(cloud_trace_context: str | None, traceparent: str | None = None) -> str | None:
    """The trace id of `X-Cloud-Trace-Context: TRACE/SPAN;o=1`, else of `traceparent: 00-TRACE-SPAN-01`."""
    if cloud_trace_context:
        candidate = cloud_trace_context.split("/", 1)[0].strip()
        if len(candidate) == 32 and set(candidate) <= _HEX:
            return candidate.lower()
    if traceparent:
        parts = traceparent.strip().split("-")
        if len(parts) >= 4 and len(parts[1]) == 32 and set(parts[1]) <= _HEX:
            return parts[1].lower()
    return None


def bind_request(
    request_id: str | None, trace_header: str | None, project: str | None, traceparent: str | None = None
) -> None:
    """Attach the request id and Cloud Trace id to every log line of this request."""
    _request_id.set(request_id)
    found = trace_id(trace_header, traceparent)
    _trace.set(f"projects/{project}/traces/{found}" if found and project else found)


def http_request(
    method: str, url: str, status: int, latency_seconds: float, user_agent: str | None, remote_ip: str | None
) -> dict[str, Any]:
    """The `httpRequest` field of an access line (Cloud Logging's HttpRequest shape)."""
    entry: dict[str, Any] = {
        "requestMethod": method,
        "requestUrl": url,
        "status": status,
        "latency": f"{latency_seconds:.6f}s",
    }
    if user_agent:
        entry["userAgent"] = user_agent[:256]
    if remote_ip:
        entry["remoteIp"] = remote_ip
    return entry


def mask(name: str, value: Any) -> Any:
    """Mask a value whose field name looks like a secret."""
    lowered = name.lower()
    if any(word in lowered for word in _SECRET_WORDS) and value not in (None, ""):
        return "***"
    return value


class JsonFormatter(logging.Formatter):
    """Format records as Cloud Logging structured JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": "WARNING" if record.levelname == "WARN" else record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
            "serviceContext": _service_context(),
        }
        if record.exc_info:
            entry["message"] += "\n" + self.formatException(record.exc_info)
        request_id, trace = _request_id.get(), _trace.get()
        if request_id:
            entry["request_id"] = request_id
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value if key in _SPECIAL else mask(key, value)
        return json.dumps(entry, default=str)


@functools.cache
def _service_context() -> dict[str, str]:
    """Which function and release wrote the line (K_SERVICE is set by Cloud Run)."""
    return {"service": os.environ.get("K_SERVICE", "local"), "version": release.version()}


def configure(level: str | None = None) -> None:
    """Send every log record to stdout as JSON, replacing plain-text handlers (idempotent).

    The level is `level`, else LOG_LEVEL, else INFO. A handler someone else installed
    (a runtime's basicConfig) is taken off the root logger: its lines would be bare text.
    """
    root = logging.getLogger()
    chosen = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    if chosen not in logging.getLevelNamesMapping():
        chosen = "INFO"
    root.setLevel(chosen)
    logging.captureWarnings(True)  # a library's warning is a WARNING line, not bare stderr text
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    for handler in list(root.handlers):
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
