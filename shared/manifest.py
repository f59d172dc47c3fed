"""The function manifest (`infra/functions.toml`): every function, its route and its needs.

The local gateway, the deploy tooling, the tests and the entry points themselves read it;
nothing else lists routes. A bundle carries a copy beside the vendored `shared/` package.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_CANDIDATES = (_HERE / "functions.toml", _HERE.parent / "infra" / "functions.toml")

AUTH_KINDS = ("none", "customer", "mitra", "cc", "cc_admin", "any", "scheduler")


@dataclass(frozen=True)
class Function:
    """One deployable function."""

    name: str
    group: str
    entry_point: str
    method: str
    route: str
    auth: str = "none"
    test_only: bool = False
    env: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    memory: str = "256Mi"
    timeout: int = 60
    concurrency: int = 8
    min_instances: int = 0
    max_instances: int = 100
    schedule_env: str | None = None
    schedule_default_seconds: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(s for s in self.route.split("/") if s)

    @property
    def is_sweep(self) -> bool:
        return self.schedule_env is not None

    def match(self, path: str) -> dict[str, str] | None:
        """Match a request path against the route, right-aligned; return its :params."""
        wanted = self.segments
        got = tuple(s for s in path.split("/") if s)
        if len(got) < len(wanted):
            return None
        got = got[len(got) - len(wanted) :]
        params: dict[str, str] = {}
        for pattern, actual in zip(wanted, got, strict=True):
            if pattern.startswith(":"):
                params[pattern[1:]] = actual
            elif pattern != actual:
                return None
        return params

    def match_exact(self, path: str) -> dict[str, str] | None:
        """Match the whole path (the gateway has no function-URL prefix to skip)."""
        if len([s for s in path.split("/") if s]) != len(self.segments):
            return None
        return self.match(path)


@dataclass(frozen=True)
class Manifest:
    defaults: dict[str, Any]
    functions: tuple[Function, ...]

    def by_entry_point(self, entry_point: str) -> Function:
        for fn in self.functions:
            if fn.entry_point == entry_point:
                return fn
        raise KeyError(f"{entry_point} is not in the function manifest")

    def group(self, group: str) -> tuple[Function, ...]:
        return tuple(fn for fn in self.functions if fn.group == group)

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(fn.group for fn in self.functions))


_NAME = re.compile(r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_ENTRY = re.compile(r"^[a-z_][a-z0-9_]*$")


def parse(data: dict[str, Any]) -> Manifest:
    """Validate and build a Manifest from parsed TOML."""
    defaults = dict(data.get("defaults", {}))
    known = set(Function.__dataclass_fields__) - {"extra"}
    out: list[Function] = []
    seen_names: set[str] = set()
    seen_routes: set[tuple[str, str]] = set()
    for raw in data.get("function", []):
        merged = {**{k: v for k, v in defaults.items() if k in known}, **raw}
        merged["env"] = tuple(defaults.get("env", ())) + tuple(raw.get("env", ()))
        merged["secrets"] = tuple(defaults.get("secrets", ())) + tuple(raw.get("secrets", ()))
        extra = {k: v for k, v in merged.items() if k not in known}
        fn = Function(**{k: v for k, v in merged.items() if k in known}, extra=extra)
        if not _NAME.match(fn.name):
            raise ValueError(f"function name {fn.name!r} is not a valid Cloud Functions name")
        if not _ENTRY.match(fn.entry_point):
            raise ValueError(f"entry point {fn.entry_point!r} is not a Python identifier")
        if fn.auth not in AUTH_KINDS:
            raise ValueError(f"{fn.name}: auth must be one of {AUTH_KINDS}")
        if fn.name in seen_names or (fn.method, fn.route) in seen_routes:
            raise ValueError(f"duplicate function {fn.name} or route {fn.method} {fn.route}")
        seen_names.add(fn.name)
        seen_routes.add((fn.method, fn.route))
        out.append(fn)
    return Manifest(defaults=defaults, functions=tuple(out))


def path() -> Path:
    """The manifest file this installation uses."""
    for candidate in _CANDIDATES:
        if candidate.exists():
            return candidate
    raise FileNotFoundError("functions.toml not found beside shared/ or in infra/")


@functools.cache
def load() -> Manifest:
    """Load the manifest once per process."""
    with path().open("rb") as fh:
        return parse(tomllib.load(fh))
