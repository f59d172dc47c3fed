"""Test clients of single functions: the one app cache of the test suite (the `call` fixture uses it).

Apps are built once per entry point through functions-framework's create_app and shared by
every test; the process-wide context decides which servers a request reaches.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import functions_framework

from infra import gateway
from shared import context, manifest
from shared.context import AppContext

_apps: dict[str, Any] = {}
# Apps are built one at a time: racing tests ask for a client from many threads at once, and
# building one compiles werkzeug's URL rules with ast.parse, which failed here in two threads
# at once on CPython 3.11.7 ("SystemError: AST constructor recursion depth mismatch"; the
# interpreter's AST depth tracking, https://github.com/python/cpython/issues/106905).
_building = threading.Lock()


def client(entry_point: str) -> Any:
    """A Flask test client of one function (through functions-framework's create_app)."""
    if entry_point not in _apps:
        with _building:
            if entry_point not in _apps:
                _apps[entry_point] = gateway.build_app(manifest.load().by_entry_point(entry_point))
    return _apps[entry_point].test_client()


def fresh_app(entry_point: str) -> Any:
    """A separately created, uncached app of the same function: a second "instance"."""
    fn = manifest.load().by_entry_point(entry_point)
    with _building:
        app = functions_framework.create_app(target=fn.entry_point, source=str(gateway.source_of(fn)))
    return app.test_client()


def with_valkey(ctx: AppContext, valkey_url: str) -> AppContext:
    """The same database, clock and key prefix on another Valkey; installed as the process context."""
    other = AppContext(dataclasses.replace(ctx.settings, valkey_url=valkey_url), clock=ctx.clock)
    context.install(other)
    return other
