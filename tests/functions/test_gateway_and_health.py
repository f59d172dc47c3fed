"""The local gateway and GET /healthz against the real servers."""

import functools
from dataclasses import replace

from werkzeug.test import Client

from infra import gateway
from infra.embedded import free_port
from shared import context, manifest
from shared.context import AppContext
from tests.support.helpers import installed


@functools.cache
def _app() -> gateway.Gateway:
    """One gateway for the module: building it loads every function's main.py (seconds), and
    its entry points read the process-wide context per request, not at build."""
    return gateway.Gateway(gateway.local_plan(enable_test_endpoints=True))


def _gateway() -> Client:
    return Client(_app())


def test_gateway_serves_a_manifest_route_through_create_app(ctx):
    resp = _gateway().get("/healthz")
    assert resp.status_code == 200
    assert resp.json["postgres"]["ok"] and resp.json["valkey"]["ok"]


def test_gateway_unknown_route_is_json_404(ctx):
    resp = _gateway().get("/api/does-not-exist")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"


def test_gateway_wrong_method_is_json_405(ctx):
    resp = _gateway().delete("/healthz")
    assert resp.status_code == 405 and resp.headers["Allow"] == "GET"


def test_gateway_serves_every_manifest_function():
    served = {fp.fn.name for fp in gateway.local_plan(enable_test_endpoints=True).functions}
    assert served == {fn.name for fn in manifest.load().functions}
    public = {fn.name for fn in gateway.served_functions(enable_test_endpoints=False)}
    assert all(not fn.test_only for fn in manifest.load().functions if fn.name in public)


def test_route_table_lists_every_route():
    table = gateway.route_table(manifest.load().functions)
    for fn in manifest.load().functions:
        assert fn.route in table


def test_healthz_reports_a_stopped_valkey_as_down(call, own_valkey):
    with installed(AppContext(replace(context.current().settings, valkey_url=own_valkey.url))):
        assert call("healthz").get("/healthz").status_code == 200
        own_valkey.stop()
        resp = call("healthz").get("/healthz")
    assert resp.status_code == 503
    assert resp.json["valkey"]["ok"] is False and resp.json["postgres"]["ok"] is True
    assert resp.json["status"] == "degraded"


def test_healthz_reports_an_unreachable_postgres_as_down(call):
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/bestie"
    with installed(AppContext(replace(context.current().settings, database_url=dead))):
        resp = call("healthz").get("/healthz")
    assert resp.status_code == 503
    assert resp.json["postgres"]["ok"] is False and resp.json["valkey"]["ok"] is True
