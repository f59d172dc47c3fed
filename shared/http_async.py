"""The HTTP edge of coroutine entry points (`functions_framework.aio`), on shared.http's contract.

A long poll must hold no thread while it waits, so its entry point is a coroutine that
functions-framework serves on its ASGI stack (Starlette under gunicorn's uvicorn worker; a
plain `def` there would run in a small thread pool). Everything around the handler is
shared.http's, so the routes behave exactly like the others: the Starlette request is shown to
it as a werkzeug request (same header cleaning, client IP, CORS, JSON errors, access line).

Blocking work never runs on the event loop: the caller check (it may read Valkey or Postgres)
and the handler's own reads go through `blocking`, a per-process pool of DB_POOL_SIZE threads,
one per pooled Postgres connection, so a thread of it never waits for a connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import flask
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from shared import context
from shared.http import ApiRequest, Authenticate, Reply, admit, begin, declare, failure_response, finish, to_response

T = TypeVar("T")

AsyncHandler = Callable[[ApiRequest], Awaitable["dict[str, Any] | Reply"]]
AsyncView = Callable[[Request], Awaitable[Response]]

_pool: ThreadPoolExecutor | None = None


class _EveryPath(PathConvertor):
    """functions-framework sends every path to the function through Starlette's `/{path:path}`
    route, whose `.*` stops at a newline: a `%0A` in an id got Starlette's text/plain 404 before
    the view ran. Matching every character brings such a path to the view, which answers it in
    JSON as any other malformed id. Starlette reads the convertor when it compiles a route
    (starlette.convertors.register_url_convertor), after this module's import."""

    regex = "(?s:.*)"


register_url_convertor("path", _EveryPath())


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        size = context.current().settings.db_pool_size
        _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="blocking")
    return _pool


async def blocking(call: Callable[..., T], *args: Any) -> T:
    """Run a short blocking call (a Postgres read) off the event loop, with this request's log context."""
    run = functools.partial(contextvars.copy_context().run, call, *args)
    return await asyncio.get_running_loop().run_in_executor(_executor(), run)


def async_endpoint(
    serves: str, *, auth: str, authenticate: Authenticate | None = None
) -> Callable[[AsyncHandler], AsyncView]:
    """`endpoint` for a coroutine handler: the same declaration, checked against the manifest."""
    return functools.partial(_wrap_async, serves=serves, auth=auth, authenticate=authenticate)


def _wrap_async(handler: AsyncHandler, *, serves: str, auth: str, authenticate: Authenticate | None) -> AsyncView:
    fn, check = declare(handler.__name__, serves, auth, authenticate)

    @functools.wraps(handler)
    async def view(request: Request) -> Response:
        started = time.perf_counter()
        raw = flask.Request(_environ(request.scope))
        ctx, request_id = begin(raw)
        try:
            admitted = await blocking(admit, fn, check, ctx, raw, request_id)
            resp = admitted if isinstance(admitted, flask.Response) else to_response(await handler(admitted))
        except Exception as exc:
            resp = failure_response(fn, exc)
        return _starlette(finish(fn, ctx, raw, resp, request_id, started))

    return view


# Shared by every request (a long poll holds its environ while it waits): these routes read no
# body, and reading an empty stream leaves it as it was; errors go where WSGI servers send them.
_NO_BODY = io.BytesIO(b"")


def _environ(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP scope without a body (these routes read none)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        # WSGI carries the raw path bytes as latin-1 text; werkzeug decodes them as UTF-8.
        "PATH_INFO": (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0].decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": _NO_BODY,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
        text = value.decode("latin-1")
        joiner = "; " if key == "HTTP_COOKIE" else ","
        environ[key] = f"{environ[key]}{joiner}{text}" if key in environ else text
    return environ


def _starlette(resp: flask.Response) -> Response:
    out = Response(resp.get_data(), status_code=resp.status_code)
    out.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()]
    return out
