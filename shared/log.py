"""Structured JSON logs in the shape Cloud Logging parses from stdout.

Each line is one JSON object with `severity`, `message`, `logging.googleapis.com/trace`
(from X-Cloud-Trace-Context) and `request_id`, plus any `extra={...}` fields. Field names
that look like secrets are masked, so a careless `extra` cannot leak a token or password.
See https://cloud.google.com/logging/docs/structured-logging.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace", default=None)

_SECRET_WORDS = ("password", "secret", "token", "authorization", "cookie", "code", "otp", "key")
_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def bind_request(request_id: str | None, trace_header: str | None, project: str | None) -> None:
    """Attach the request id and Cloud Trace id to every log line of this request."""
    _request_id.set(request_id)
    trace = None
    if trace_header:
        trace_id = trace_header.split("/", 1)[0].strip()
        if trace_id and all(c in "0123456789abcdefABCDEF" for c in trace_id):
            trace = f"projects/{project}/traces/{trace_id}" if project else trace_id
    _trace.set(trace)


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
                entry[key] = mask(key, value)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO") -> None:
    """Send every log record to stdout as JSON (idempotent)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
