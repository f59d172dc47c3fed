"""Real browser checks in headless Chromium (Debian's `chromium`, driven by Playwright).

- The control center's staff session from its own origin: login, the httpOnly refresh cookie
  carrying the session across a reload, a preflighted PUT, logout.
- `make dev`'s API explorer at /docs renders every documented operation.

In CI (`CI=true`) a missing chromium fails these tests; on a developer machine they skip.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from infra import dev, openapi_norm
from infra.embedded import free_port
from shared.auth import cc_users
from shared.context import AppContext
from tests.support.server_process import server

EMAIL = "browser-admin@bestie.test"
PASSWORD = "Browser-check-1"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = pw.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def serve_wsgi() -> Iterator[Callable[[Callable[..., Iterable[bytes]], int], str]]:
    """Serve a WSGI app on localhost:port in a thread for the test's duration."""
    servers: list[Any] = []

    def start(app: Callable[..., Iterable[bytes]], port: int) -> str:
        srv = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://localhost:{port}"

    yield start
    for srv in servers:
        srv.shutdown()


def _nothing_behind(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return Response("not found", status=404)(environ, start_response)


def test_docs_renders_every_documented_operation(page, serve_wsgi):
    spec = openapi_norm.load_spec(dev.SPEC.read_text())
    expected = {
        f"operations-{op['tags'][0]}-{op['operationId']}"
        for item in spec["paths"].values()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }
    base = serve_wsgi(dev.api_explorer(_nothing_behind), free_port())

    page.goto(f"{base}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator("text=Unable to render this definition").count() == 0
    rendered = set(page.eval_on_selector_all('[id^="operations-"].opblock', "els => els.map(e => e.id)"))
    assert rendered == expected, f"missing {sorted(expected - rendered)}, unexpected {sorted(rendered - expected)}"


_CC_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>control center</title></head><body><script>
const API = "%(api)s";
async function call(method, path, {body, token} = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers["Authorization"] = "Bearer " + token;
  const resp = await fetch(API + path, {
    method, headers, credentials: "include", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  return {
    status: resp.status,
    body: text ? JSON.parse(text) : null,
    requestId: resp.headers.get("X-Request-Id"),
  };
}
</script></body></html>
"""


def test_control_center_session_from_its_own_origin(ctx: AppContext, page, serve_wsgi):
    page_port = free_port()
    origin = f"http://localhost:{page_port}"  # same site as the API on another port: another origin
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM control_center_users WHERE email = :e", e=EMAIL)
        tx.commit()
    cc_users.create_user(ctx, EMAIL, PASSWORD, "admin")

    with server(ctx, ("auth", "admin"), {"CC_ORIGIN": origin}) as api_url:
        api = api_url.replace("127.0.0.1", "localhost")
        html = _CC_PAGE % {"api": api}
        serve_wsgi(lambda env, start: Response(html, mimetype="text/html")(env, start), page_port)
        page.goto(f"{origin}/")

        login = page.evaluate(
            "([e, p]) => call('POST', '/internal/auth/login', {body: {email: e, password: p}})", [EMAIL, PASSWORD]
        )
        assert login["status"] == 200, login
        assert "refresh_token" not in login["body"] and login["body"]["user"]["email"] == EMAIL
        assert page.evaluate("document.cookie") == ""  # httpOnly: the refresh token never reaches JavaScript

        page.reload()  # the page forgets its access token; the cookie keeps the session
        refreshed = page.evaluate("call('POST', '/internal/auth/refresh')")
        assert refreshed["status"] == 200, refreshed
        token = refreshed["body"]["access_token"]
        me = page.evaluate("t => call('GET', '/internal/auth/me', {token: t})", token)
        assert me["status"] == 200 and me["body"]["email"] == EMAIL

        # PUT with a bearer and a JSON body is preflighted (OPTIONS) before it is sent
        current = page.evaluate("t => call('GET', '/internal/app-config/session_default_minutes', {token: t})", token)
        assert current["status"] == 200, current
        put = page.evaluate(
            "([t, v]) => call('PUT', '/internal/app-config/session_default_minutes', {token: t, body: {value: v}})",
            [token, current["body"]["value"]],
        )
        assert put["status"] == 200 and put["body"]["value"] == current["body"]["value"], put
        assert put["requestId"], "X-Request-Id must be readable by the page (Access-Control-Expose-Headers)"

        out = page.evaluate("call('POST', '/internal/auth/logout')")
        assert out["status"] == 204, out
        after = page.evaluate("call('POST', '/internal/auth/refresh')")
        assert after["status"] == 401, after
