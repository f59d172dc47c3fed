"""Local gateway: the deploy plan's load balancer and function URLs on one port (`make dev`).

It serves the same Plan object the deploy tool executes (infra/deploy), so local runs
exercise the deployed shape and no second description of the routes exists:
- a request is routed by the plan's URL map, evaluated as the load balancer evaluates it
  (infra/deploy/urlmap.route): method rules first, then one rule per path for the JSON 405,
  else the default service (healthz, whose route match answers a JSON 404);
- `/_functions/<name>/<path>` stands for the function's own URL
  (`https://REGION-PROJECT.cloudfunctions.net/<name>/<path>`), which is how the local
  scheduler reaches the sweeps, at their route on the root of their own URL;
- a private function (a sweep), which the load balancer does not carry, also answers its
  route on the gateway, so `curl localhost:8080/sweeps/...` works as the routes list it.

Each function is built with functions-framework's own `create_app(target, source)`, as the
Cloud Functions runtime builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import flask
import functions_framework

from infra import asgi_bridge, deploy
from infra.deploy import urlmap
from shared import manifest

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO / "functions"
FUNCTION_URLS = "/_functions/"
LOCAL_PROJECT, LOCAL_REGION = "bestie-local", "local"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def source_of(fn: manifest.Function) -> Path:
    return FUNCTIONS_DIR / fn.group / "main.py"


def build_app(fn: manifest.Function) -> WsgiApp:
    """One function's app, built the way the Cloud Functions runtime builds it.

    A coroutine function (`functions_framework.aio`) comes back as an ASGI app; it is served
    here through infra.asgi_bridge, on one event loop as one uvicorn worker serves it.
    """
    app = functions_framework.create_app(target=fn.entry_point, source=str(source_of(fn)))
    if isinstance(app, flask.Flask):
        return app
    return asgi_bridge.WsgiBridge(app)


def served_functions(enable_test_endpoints: bool) -> list[manifest.Function]:
    return [fn for fn in manifest.load().functions if enable_test_endpoints or not fn.test_only]


def local_plan(enable_test_endpoints: bool) -> deploy.Plan:
    """The deploy plan of what `make dev` serves (test routes included when enabled)."""
    config = deploy.load_config(LOCAL_PROJECT, LOCAL_REGION)
    return deploy.plan(served_functions(enable_test_endpoints), config, {}, local=True)


def function_url_base(plan: deploy.Plan) -> str:
    """The prefix the plan's function URLs share (what the gateway's /_functions/ stands for)."""
    return plan.functions[0].url.rsplit("/", 1)[0] + "/"


class Gateway:
    """A WSGI app serving a plan: its URL map, and its functions' own URLs under /_functions/."""

    def __init__(self, plan: deploy.Plan, builder: Callable[[manifest.Function], WsgiApp] = build_app):
        self.plan = plan
        self.functions = {fp.fn.name: fp.fn for fp in plan.functions}
        self.apps = {name: builder(fn) for name, fn in self.functions.items()}
        public = [fp.fn for fp in plan.functions if fp.public]
        self.private = [fp.fn for fp in plan.functions if not fp.public]
        self.backends = urlmap.backends(public, plan.config.project, plan.config.load_balancer)

    def resolve(self, method: str, path: str) -> tuple[str, str]:
        """(function name, path it receives) for a request to the gateway."""
        if path.startswith(FUNCTION_URLS):
            name, _, rest = path[len(FUNCTION_URLS) :].partition("/")
            if name in self.functions:
                return name, "/" + rest
        for fn in self.private:
            if fn.match_exact(path) is not None:
                return fn.name, path
        return self.backends[urlmap.route(self.plan.url_map, method, path)], path

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        name, path = self.resolve(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"))
        return self.apps[name]({**environ, "PATH_INFO": path}, start_response)


def route_table(functions: Iterable[manifest.Function]) -> str:
    """A printable table of what the gateway serves."""
    rows = [(fn.method, fn.route, fn.group, fn.entry_point, fn.auth) for fn in functions]
    widths = [max(len(r[i]) for r in rows) for i in range(5)] if rows else [0] * 5
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
