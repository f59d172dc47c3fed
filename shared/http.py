"""The HTTP edge shared by every entry point.

`@endpoint` wraps a handler `(ApiRequest) -> dict | Reply`: it looks the function up in the
manifest (method, route, auth kind), parses path parameters, authenticates, applies CORS on
/internal routes, and maps every error to the JSON error body in exactly one place. Bad
input never becomes a 500: malformed JSON, a wrong content type or an oversized body are
4xx with an error code.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import flask
from werkzeug.exceptions import HTTPException

from shared import context, manifest, validate
from shared import log as jsonlog
from shared.context import AppContext
from shared.errors import (
    ApiError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

logger = logging.getLogger("bestie.http")

# Auth kind in the manifest -> "module:function" that returns the principal or raises.
# Imported on first use so a function never loads verifiers it does not need.
AUTHENTICATORS: dict[str, str] = {
    "customer": "shared.auth.guard:authenticate",
    "mitra": "shared.auth.guard:authenticate",
    "cc": "shared.auth.guard:authenticate",
    "cc_admin": "shared.auth.guard:authenticate",
    "any": "shared.auth.guard:authenticate",
    "scheduler": "shared.sweeps.caller:authenticate",
}


@dataclass
class Reply:
    """A response with a status, headers or cookies beyond a plain 200 JSON body."""

    body: dict[str, Any] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[dict[str, Any]] = field(default_factory=list)

    def set_cookie(self, name: str, value: str, **options: Any) -> Reply:
        self.cookies.append({"key": name, "value": value, **options})
        return self


@dataclass
class ApiRequest:
    """What a handler sees: the parsed request plus the app context and the caller."""

    raw: flask.Request
    ctx: AppContext
    function: manifest.Function
    params: dict[str, str]
    request_id: str
    principal: Any = None
    _body: dict[str, Any] | None = None

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; empty body means {}. 4xx on anything else."""
        if self._body is None:
            self._body = _parse_body(self.raw, self.ctx.settings.max_body_bytes)
        return self._body

    def header(self, name: str) -> str | None:
        return self.raw.headers.get(name)

    def uuid_param(self, name: str = "id") -> str:
        """A path parameter that must be a UUID (400 VALIDATION_FAILED naming it otherwise)."""
        return validate.uuid_value(self.params[name], name)

    def query(self, name: str) -> str | None:
        return self.raw.args.get(name)

    def cookie(self, name: str) -> str | None:
        return self.raw.cookies.get(name)

    @property
    def ip(self) -> str:
        """The client address: X-Forwarded-For counted TRUSTED_PROXY_HOPS from the right."""
        hops = self.ctx.settings.trusted_proxy_hops
        forwarded = self.raw.headers.get("X-Forwarded-For", "")
        entries = [e.strip() for e in forwarded.split(",") if e.strip()]
        if hops and len(entries) >= hops:
            return entries[-hops]
        return self.raw.remote_addr or "unknown"

    @property
    def user_agent(self) -> str | None:
        ua = self.raw.headers.get("User-Agent")
        return ua[:256] if ua else None


def _parse_body(raw: flask.Request, limit: int) -> dict[str, Any]:
    if raw.content_length is not None and raw.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    data = raw.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if not data.strip():
        return {}
    if raw.mimetype != "application/json":
        raise UnsupportedMediaType()
    try:
        body = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ValidationFailed("body", "malformed JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed("body", "must be a JSON object")
    return body


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def json_response(
    body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> flask.Response:
    """A JSON response that no cache keeps (bodies may hold tokens)."""
    resp = flask.Response(
        json.dumps(body, default=str, separators=(",", ":")) if body is not None else "",
        status=status,
        mimetype="application/json" if body is not None else None,
    )
    resp.headers["Cache-Control"] = "no-store"
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def error_response(exc: ApiError) -> flask.Response:
    return json_response(exc.body(), exc.status, exc.headers)


def _cors_headers(ctx: AppContext, fn: manifest.Function, raw: flask.Request) -> dict[str, str]:
    origin = raw.headers.get("Origin")
    allowed = ctx.settings.cc_origin
    if not fn.route.startswith("/internal") or not origin or not allowed or origin != allowed:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _preflight(ctx: AppContext, fn: manifest.Function, raw: flask.Request) -> flask.Response:
    headers = _cors_headers(ctx, fn, raw)
    if headers:
        headers.update(
            {
                "Access-Control-Allow-Methods": f"{fn.method}, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
    return json_response(None, 204, headers)


def _authenticate(req: ApiRequest) -> Any:
    target = AUTHENTICATORS[req.function.auth]
    module_name, func_name = target.split(":")
    authenticate = getattr(importlib.import_module(module_name), func_name)
    return authenticate(req.ctx, req, req.function.auth)


Handler = Callable[[ApiRequest], "dict[str, Any] | Reply"]


def endpoint(handler: Handler) -> Callable[[flask.Request], flask.Response]:
    """Wrap a handler named after its manifest entry point into a Flask view."""
    fn = manifest.load().by_entry_point(handler.__name__)

    @functools.wraps(handler)
    def view(raw: flask.Request) -> flask.Response:
        started = time.perf_counter()
        ctx = context.current()
        request_id = raw.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
        jsonlog.bind_request(request_id, raw.headers.get("X-Cloud-Trace-Context"), ctx.settings.google_cloud_project)
        cors = _cors_headers(ctx, fn, raw)
        try:
            resp = _dispatch(handler, fn, ctx, raw, request_id)
        except ApiError as exc:
            resp = error_response(exc)
        except HTTPException as exc:
            resp = error_response(
                ApiError(
                    exc.description, code=(exc.name or "HTTP_ERROR").upper().replace(" ", "_"), status=exc.code or 400
                )
            )
        except Exception:
            logger.exception("unhandled error in %s", fn.name)
            resp = error_response(ApiError())
        for key, value in cors.items():
            resp.headers[key] = value
        resp.headers["X-Request-Id"] = request_id
        quiet = fn.extra.get("access_log") == "errors" and resp.status_code < 400  # see infra/functions.toml
        logger.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s -> %s",
            raw.method,
            raw.path,
            resp.status_code,
            extra={
                "function": fn.name,
                "status": resp.status_code,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return resp

    return view


def _dispatch(
    handler: Handler, fn: manifest.Function, ctx: AppContext, raw: flask.Request, request_id: str
) -> flask.Response:
    if fn.test_only and not ctx.settings.enable_test_endpoints:
        raise NotFound("no such route")
    if raw.method == "OPTIONS":
        return _preflight(ctx, fn, raw)
    if raw.method != fn.method and not (fn.method == "GET" and raw.method == "HEAD"):
        raise MethodNotAllowed(f"{fn.route} accepts {fn.method}", headers={"Allow": fn.method})
    params = fn.match(raw.path)
    if params is None:
        raise NotFound("no such route")
    req = ApiRequest(raw=raw, ctx=ctx, function=fn, params=params, request_id=request_id)
    if fn.auth != "none":
        req.principal = _authenticate(req)
    result = handler(req)
    if isinstance(result, Reply):
        resp = json_response(result.body, result.status, result.headers)
        for cookie in result.cookies:
            resp.set_cookie(**cookie)
        return resp
    return json_response(result)
