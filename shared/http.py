"""The HTTP edge shared by every entry point.

`@endpoint` wraps a handler `(ApiRequest) -> dict | Reply`: it looks the function up in the
manifest (method, route, auth kind), parses path parameters, authenticates, applies CORS on
/internal routes, and maps every error to the JSON error body in exactly one place. Bad
input never becomes a 500: malformed JSON, a wrong content type or an oversized body are
4xx with an error code.

It is also the edge filter: a JSON body, a path parameter or a query parameter holding NUL
or text UTF-8 cannot encode is a 400 VALIDATION_FAILED naming it; JSON numbers must be
finite and fit a bigint; header values the services keep (User-Agent, the client IP, the
request id) are cleaned before anyone sees them, and a header or cookie that is not clean
text reads as absent (a credential in it is then simply missing: 401, not 400). What Flask
answers before the wrapper runs (no route matched, a path with a newline) is JSON too:
`endpoint` registers the error handlers on the app that functions-framework is building
when the entry point module is loaded. See docs/edge.md.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import flask
from werkzeug.exceptions import HTTPException

from shared import config, context, manifest, validate
from shared import log as jsonlog
from shared.auth import guard
from shared.context import AppContext
from shared.errors import (
    ApiError,
    BadRequest,
    ConfigError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

logger = logging.getLogger("bestie.http")


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

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (the first value of each field); 413/415/400."""
        limit = self.ctx.settings.max_body_bytes
        data = self.raw.stream.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        if self.raw.mimetype != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("expected Content-Type: application/x-www-form-urlencoded")
        try:
            fields = parse_qs(data.decode("utf-8"), errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise ValidationFailed("body", "malformed form") from None
        return {name: values[0] for name, values in fields.items() if not validate.text_problem(values[0])}

    def header(self, name: str) -> str | None:
        """A header's value; one holding control characters or unencodable text reads as absent."""
        value = self.raw.headers.get(name)
        if value is None or _CONTROL.search(value) or validate.text_problem(value):
            return None
        return value

    def uuid_param(self, name: str = "id") -> str:
        """A path parameter that must be a UUID (400 VALIDATION_FAILED naming it otherwise)."""
        return validate.uuid_value(self.params[name], name)

    def query(self, name: str) -> str | None:
        """A query parameter; 400 VALIDATION_FAILED naming it when it is not storable text."""
        return _checked(self.raw.args.get(name), name)

    def query_int(
        self, name: str, *, minimum: int | None = None, maximum: int | None = None, default: int | None = None
    ) -> int | None:
        """An integer query parameter within bounds (and within bigint); `default` when absent."""
        return validate.query_integer(self.query(name), name, minimum=minimum, maximum=maximum, default=default)

    def cookie(self, name: str) -> str | None:
        """A cookie; like a header, one that is not clean text reads as absent."""
        value = self.raw.cookies.get(name)
        if value is None or _CONTROL.search(value) or validate.text_problem(value):
            return None
        return value

    @property
    def ip(self) -> str:
        """The client address: X-Forwarded-For counted TRUSTED_PROXY_HOPS from the right."""
        return client_ip(self.raw, self.ctx.settings.trusted_proxy_hops)

    @property
    def user_agent(self) -> str | None:
        """The User-Agent, cleaned for storage (no control characters, valid UTF-8, 256 chars)."""
        return validate.clean_header(self.raw.headers.get("User-Agent"), 256)


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # a tab is legal in a header value
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/-]{1,64}")


def _checked(value: str | None, name: str) -> str | None:
    if value is not None:
        problem = validate.text_problem(value)
        if problem:
            raise ValidationFailed(name, problem)
    return value


def _request_id(raw: flask.Request) -> str:
    """The caller's X-Request-Id when it is a plain token, else a fresh one (it is echoed and logged)."""
    given = raw.headers.get("X-Request-Id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def client_ip(raw: flask.Request, hops: int) -> str:
    """The client address: X-Forwarded-For counted `hops` entries from the right (docs/auth.md).

    An entry that is not an IP address (only possible where no trusted proxy appends one)
    is ignored in favour of the socket address, so the value is always safe to key and store.
    """
    forwarded = raw.headers.get("X-Forwarded-For", "")
    entries = [e.strip() for e in forwarded.split(",") if e.strip()]
    if hops and len(entries) >= hops:
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(entries[-hops]))
    return validate.clean_header(raw.remote_addr, 64) or "unknown"


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
    validate.json_body(body)
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
    """CORS for the control center (CC_ORIGIN, /internal, with its cookie) and the apps' web
    builds (APP_WEB_ORIGINS, /api, bearer tokens only: no credentials)."""
    origin = raw.headers.get("Origin")
    if not origin:
        return {}
    if fn.route.startswith("/internal") and origin == ctx.settings.cc_origin:
        credentials = {"Access-Control-Allow-Credentials": "true"}
    elif fn.route.startswith("/api/") and origin in ctx.settings.app_web_origins:
        credentials = {}
    else:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        **credentials,
        # what the page's JavaScript may read besides the safelisted headers
        # (https://fetch.spec.whatwg.org/#http-access-control-expose-headers)
        "Access-Control-Expose-Headers": "Retry-After, X-Request-Id",
        "Vary": "Origin",
    }


def _preflight(ctx: AppContext, fn: manifest.Function, raw: flask.Request) -> flask.Response:
    headers = _cors_headers(ctx, fn, raw)
    if headers:
        headers.update(
            {
                # Every method of the path: the load balancer sends OPTIONS to one function of it.
                "Access-Control-Allow-Methods": ", ".join((*manifest.load().methods_on_path(fn), "OPTIONS")),
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
    return json_response(None, 204, headers)


# Checks the caller of a route and returns it, or raises 401/403.
Authenticate = Callable[[AppContext, Any, str], Any]

# Manifest auth kind -> its check, for the kinds every group serves (bearer JWTs). A route of
# another kind names its check where it is declared: the sweeps pass shared.sweeps.caller's
# `authenticate` to `endpoint`, so only the sweeps load (and deploy the settings of) the
# Scheduler check.
AUTHENTICATE: dict[str, Authenticate] = {
    "customer": guard.authenticate,
    "mitra": guard.authenticate,
    "cc": guard.authenticate,
    "cc_admin": guard.authenticate,
    "any": guard.authenticate,
}


Handler = Callable[[ApiRequest], "dict[str, Any] | Reply"]


_HTTP_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def api_error_for(exc: HTTPException) -> ApiError:
    """The ApiError matching a werkzeug HTTPException (Flask routing, body limits)."""
    status = exc.code or 500
    known = _HTTP_ERRORS.get(status)
    if known is NotFound:
        return NotFound("no such route")
    if known is MethodNotAllowed:
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or []))
        return MethodNotAllowed(headers={"Allow": allowed} if allowed else None)
    if known is not None:
        return known()
    if status >= 500:
        return ApiError()
    # One documented code for the rest (the status says which); the name goes in the message.
    return ApiError(code="HTTP_ERROR", status=status, message=exc.name)


def _json_http_error(exc: HTTPException) -> flask.Response:
    return error_response(api_error_for(exc))


def _json_crash(_exc: Exception) -> flask.Response:
    # Keeps functions-framework's crash marker for the platform's logs, without its HTML/text body.
    resp = error_response(ApiError())
    resp.headers["X-Google-Status"] = "crash"
    return resp


def install_error_handlers(app: flask.Flask) -> None:
    """Make `app` answer in JSON what Flask decides before any view runs (idempotent)."""
    if app.extensions.get("bestie.json_errors"):
        return
    app.extensions["bestie.json_errors"] = True
    app.register_error_handler(HTTPException, _json_http_error)
    app.register_error_handler(500, _json_crash)


View = Callable[[flask.Request], flask.Response]


def endpoint(serves: str, *, auth: str, authenticate: Authenticate | None = None) -> Callable[[Handler], View]:
    """Wrap a handler into a Flask view: `@endpoint("POST /api/client/chat-sessions", auth="customer")`.

    The handler says what it serves (method and route) and who may call it; the import fails
    when the manifest entry of its name (infra/functions.toml, the deploy's source) says
    otherwise, so a handler and its route cannot drift apart. A route of an auth kind with no
    bearer check of its own passes one: `authenticate=caller.authenticate`.
    """
    return functools.partial(_wrap, serves=serves, auth=auth, authenticate=authenticate)


def declare(
    name: str, serves: str, auth: str, authenticate: Authenticate | None = None
) -> tuple[manifest.Function, Authenticate | None]:
    """The manifest entry of entry point `name`, checked against what its handler declares, and
    its caller check; the process context is initialized."""
    fn = manifest.load().by_entry_point(name)
    if (serves, auth) != (f"{fn.method} {fn.route}", fn.auth):
        raise ConfigError(
            f"{name} declares {serves!r} with auth {auth!r}, but the manifest has"
            f" {fn.method} {fn.route} with auth {fn.auth!r}"
        )
    check = None if fn.auth == "none" else authenticate or AUTHENTICATE.get(fn.auth)
    if fn.auth != "none" and check is None:
        raise ConfigError(f"{fn.name}: auth {fn.auth!r} has no check; pass endpoint(authenticate=...)")
    context.init(required=config.required_for(fn.auth))  # a missing secret fails the import
    return fn, check


def _wrap(handler: Handler, *, serves: str, auth: str, authenticate: Authenticate | None) -> View:
    fn, check = declare(handler.__name__, serves, auth, authenticate)
    if flask.has_app_context():
        # functions-framework loads the entry point module inside the app it is building
        # (create_app), before its own routing exists: a 404 for a path its `/<path:path>`
        # rule cannot match (a newline in an id) never reaches `view`.
        install_error_handlers(flask.current_app._get_current_object())  # type: ignore[attr-defined]

    @functools.wraps(handler)
    def view(raw: flask.Request) -> flask.Response:
        started = time.perf_counter()
        ctx, request_id = begin(raw)
        try:
            resp = _dispatch(handler, fn, check, ctx, raw, request_id)
        except Exception as exc:
            resp = failure_response(fn, exc)
        return finish(fn, ctx, raw, resp, request_id, started)

    return view


def begin(raw: flask.Request) -> tuple[AppContext, str]:
    """The context and request id of a request, bound to its log lines."""
    ctx = context.current()
    request_id = _request_id(raw)
    jsonlog.bind_request(
        request_id,
        validate.clean_header(raw.headers.get("X-Cloud-Trace-Context"), 128),
        ctx.settings.google_cloud_project,
        validate.clean_header(raw.headers.get("traceparent"), 128),
    )
    return ctx, request_id


def failure_response(fn: manifest.Function, exc: Exception) -> flask.Response:
    """The JSON error of whatever a handler raised (an unexpected error is a logged 500)."""
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, HTTPException):
        return error_response(api_error_for(exc))
    logger.exception("unhandled error in %s", fn.name, exc_info=exc)
    return error_response(ApiError())


def finish(
    fn: manifest.Function, ctx: AppContext, raw: flask.Request, resp: flask.Response, request_id: str, started: float
) -> flask.Response:
    """Add CORS and the request id to a response, and write its access line."""
    for key, value in _cors_headers(ctx, fn, raw).items():
        resp.headers[key] = value
    resp.headers["X-Request-Id"] = request_id
    latency = time.perf_counter() - started
    if fn.access_log == "errors" and resp.status_code < 400:
        return resp  # a hot path logs its failures only; Cloud Run's request log still has every request
    logger.info(
        "%s %s -> %s",
        raw.method,
        raw.path,
        resp.status_code,
        extra={
            "function": fn.name,
            "status": resp.status_code,
            "latency_ms": round(latency * 1000, 2),
            "httpRequest": jsonlog.http_request(
                raw.method,
                raw.url,
                resp.status_code,
                latency,
                raw.headers.get("User-Agent"),
                client_ip(raw, ctx.settings.trusted_proxy_hops),
            ),
        },
    )
    return resp


def _dispatch(
    handler: Handler,
    fn: manifest.Function,
    check: Authenticate | None,
    ctx: AppContext,
    raw: flask.Request,
    request_id: str,
) -> flask.Response:
    admitted = admit(fn, check, ctx, raw, request_id)
    if isinstance(admitted, flask.Response):
        return admitted
    return to_response(handler(admitted))


def admit(
    fn: manifest.Function, check: Authenticate | None, ctx: AppContext, raw: flask.Request, request_id: str
) -> ApiRequest | flask.Response:
    """Route, method, path parameters and caller of a request: the ApiRequest a handler gets,
    or the whole answer (a CORS preflight); raises the 4xx of a request that goes no further."""
    if fn.test_only and not ctx.settings.enable_test_endpoints:
        raise NotFound("no such route")
    if raw.method == "OPTIONS":
        return _preflight(ctx, fn, raw)
    params = fn.match(raw.path)
    if params is None:  # before the method: an unknown path is 404 whatever the method
        raise NotFound("no such route")
    if raw.method != fn.method and not (fn.method == "GET" and raw.method == "HEAD"):
        raise MethodNotAllowed(f"{fn.route} accepts {fn.method}", headers={"Allow": fn.method})
    for name, value in params.items():
        _checked(value, name)
    req = ApiRequest(raw=raw, ctx=ctx, function=fn, params=params, request_id=request_id)
    if check is not None:
        req.principal = check(ctx, req, fn.auth)
    return req


def to_response(result: dict[str, Any] | Reply) -> flask.Response:
    """The response of what a handler returned."""
    if isinstance(result, Reply):
        resp = json_response(result.body, result.status, result.headers)
        for cookie in result.cookies:
            resp.set_cookie(**cookie)
        return resp
    return json_response(result)
