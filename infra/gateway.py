"""Local gateway: every function of the manifest on one port, with the production routes.

Each function is built with functions-framework's own `create_app(target, source)`, exactly
as the Cloud Functions runtime builds it, so local runs exercise the same code path. The
gateway only picks the function whose manifest route and method match the request; like
the production load balancer, unknown routes get a JSON 404 and a known route with the
wrong method a JSON 405.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import functions_framework

from shared import manifest

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO / "functions"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def source_of(fn: manifest.Function) -> Path:
    return FUNCTIONS_DIR / fn.group / "main.py"


def build_app(fn: manifest.Function) -> WsgiApp:
    """One function's app, built the way the Cloud Functions runtime builds it."""
    app: WsgiApp = functions_framework.create_app(target=fn.entry_point, source=str(source_of(fn)))
    return app


def _json(
    start_response: Callable[..., Any],
    status: str,
    code: str,
    message: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


class Gateway:
    """A WSGI app routing (method, path) to the manifest's functions."""

    def __init__(
        self, functions: Iterable[manifest.Function], builder: Callable[[manifest.Function], WsgiApp] = build_app
    ):
        self.functions = list(functions)
        self.apps = {fn.name: builder(fn) for fn in self.functions}

    def resolve(self, method: str, path: str) -> tuple[manifest.Function | None, list[str]]:
        """The function for (method, path), or None and the methods the path does accept."""
        matching = [fn for fn in self.functions if fn.match_exact(path) is not None]
        # A literal segment beats a parameter (/me/password before /:id/password).
        matching.sort(key=lambda fn: sum(s.startswith(":") for s in fn.segments))
        for fn in matching:
            if fn.method == method or (method in ("HEAD", "OPTIONS") and fn.method in ("GET", method)):
                return fn, []
        if method == "OPTIONS" and matching:
            return matching[0], []
        return None, sorted({fn.method for fn in matching})

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        fn, allowed = self.resolve(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"))
        if fn is not None:
            return self.apps[fn.name](environ, start_response)
        if allowed:
            return _json(
                start_response,
                "405 METHOD NOT ALLOWED",
                "METHOD_NOT_ALLOWED",
                f"this route accepts {', '.join(allowed)}",
                [("Allow", ", ".join(allowed))],
            )
        return _json(start_response, "404 NOT FOUND", "NOT_FOUND", "no such route")


def served_functions(enable_test_endpoints: bool) -> list[manifest.Function]:
    return [fn for fn in manifest.load().functions if enable_test_endpoints or not fn.test_only]


def route_table(functions: Iterable[manifest.Function]) -> str:
    """A printable table of what the gateway serves."""
    rows = [(fn.method, fn.route, fn.group, fn.entry_point, fn.auth) for fn in functions]
    widths = [max(len(r[i]) for r in rows) for i in range(5)] if rows else [0] * 5
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
