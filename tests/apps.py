"""Test clients of single functions, built like `call` but usable with any installed context."""

from __future__ import annotations

import dataclasses
from typing import Any

from infra import gateway
from shared import context, manifest
from shared.context import AppContext

_apps: dict[str, Any] = {}


def client(entry_point: str) -> Any:
    """A Flask test client of one function (through functions-framework's create_app)."""
    if entry_point not in _apps:
        _apps[entry_point] = gateway.build_app(manifest.load().by_entry_point(entry_point))
    return _apps[entry_point].test_client()


def with_valkey(ctx: AppContext, valkey_url: str) -> AppContext:
    """The same database, clock and key prefix on another Valkey; installed as the process context."""
    other = AppContext(dataclasses.replace(ctx.settings, valkey_url=valkey_url), clock=ctx.clock)
    context.install(other)
    return other
