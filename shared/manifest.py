"""The function manifest (`infra/functions.toml`): every function, its route and its resources.

The local gateway, the deploy tooling, the tests and the entry points themselves read it;
nothing else lists routes. A bundle carries a copy beside the vendored `shared/` package, as
JSON: every cold start parses it, and the json module does in well under a millisecond what
tomllib (pure Python, plus its import) took several for.
Every field is typed: an unknown key is an error, so a typo never silently changes nothing.
What a function reads from the environment is not listed here: the deploy derives it from
the code its group reaches and its auth kind (infra/deploy/needs.py).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

_HERE = Path(__file__).resolve().parent
_SOURCE = _HERE.parent / "infra" / "functions.toml"
_CANDIDATES = (_HERE / "functions.json", _SOURCE)  # a bundle's copy first

AUTH_KINDS = ("none", "customer", "mitra", "cc", "cc_admin", "any", "scheduler")
# Where a revoked session is noticed: in the auth guard (one Valkey read per request), or by
# the handler's own script ("handler": the heartbeat checks it in its one round trip).
REVOCATION_CHECKS = ("guard", "handler")
ACCESS_LOGS = ("all", "errors")
BILLING_MODES = ("request", "instance")


class Function(NamedTuple):
    """One deployable function."""

    name: str
    group: str
    entry_point: str
    method: str
    route: str
    auth: str = "none"
    test_only: bool = False
    memory: str = "256Mi"
    cpu: str | None = None  # None: one whole CPU when concurrency > 1, else the memory's default
    timeout: int = 60
    concurrency: int = 8
    min_instances: int = 0
    # None: an even share of what the connection budget leaves (infra/deploy/budget.py).
    max_instances: int | None = None
    # Postgres connections one instance may hold: None follows concurrency (one per request in
    # flight); lower where Postgres is only a fallback path (heartbeat, beacon), higher where one
    # request holds two (a sweep's lock and its work), see docs/deployment.md "Connection budget".
    db_pool_size: int | None = None
    revocation_check: str = "guard"
    access_log: str = "all"  # "errors": the access line only for 4xx/5xx (the heartbeat's hot path)
    # Cloud Run billing: "instance" where steady traffic makes it cheaper (docs/cost.md, make cost).
    billing: str = "request"
    # It queues pushes that leave after its response (shared.notify): the deploy gives it
    # instance-based billing, since request-based billing throttles the CPU between requests.
    pushes: bool = False
    schedule_env: str | None = None

    @property
    def pool_size(self) -> int:
        """Postgres connections one instance of this function may open.

        By default a quarter of its concurrency, rounded up: a request holds a connection only
        for its transactions, a fraction of its time (JWT, Valkey, bcrypt, pushes and JSON are
        the rest), and one that finds the pool busy waits DB_POOL_TIMEOUT_SECONDS for a
        connection rather than failing. A pool per request in flight would leave so few
        instances per function inside the connection budget that load would queue at the
        instance cap instead (docs/deployment.md, "Connection budget").
        """
        if self.db_pool_size is not None:
            return self.db_pool_size
        return max(1, -(-self.concurrency // 4))

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


class Manifest(NamedTuple):
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

    def methods_on_path(self, fn: Function) -> tuple[str, ...]:
        """Every method served on `fn`'s path (GET and PUT /internal/app-config/:key), sorted."""
        shape = _shape(fn)
        return tuple(sorted({other.method for other in self.functions if _shape(other) == shape}))


def _shape(fn: Function) -> tuple[str, ...]:
    """A route with its parameter names erased (/a/:id and /a/:key are the same path)."""
    return tuple(":" if s.startswith(":") else s for s in fn.segments)


_NAME = re.compile(r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_ENTRY = re.compile(r"^[a-z_][a-z0-9_]*$")


def parse(data: dict[str, Any]) -> Manifest:
    """Validate and build a Manifest from parsed TOML."""
    defaults = dict(data.get("defaults", {}))
    known = set(Function._fields)
    _reject_unknown("[defaults]", defaults, known)
    out: list[Function] = []
    seen_names: set[str] = set()
    seen_routes: set[tuple[str, str]] = set()
    for raw in data.get("function", []):
        _reject_unknown(f"function {raw.get('name', '?')!r}", raw, known)
        fn = Function(**{**defaults, **raw})
        if not _NAME.match(fn.name):
            raise ValueError(f"function name {fn.name!r} is not a valid Cloud Functions name")
        if not _ENTRY.match(fn.entry_point):
            raise ValueError(f"entry point {fn.entry_point!r} is not a Python identifier")
        if fn.auth not in AUTH_KINDS:
            raise ValueError(f"{fn.name}: auth must be one of {AUTH_KINDS}")
        if fn.access_log not in ACCESS_LOGS:
            raise ValueError(f"{fn.name}: access_log must be one of {ACCESS_LOGS}")
        if fn.revocation_check not in REVOCATION_CHECKS:
            raise ValueError(f"{fn.name}: revocation_check must be one of {REVOCATION_CHECKS}")
        if fn.billing not in BILLING_MODES:
            raise ValueError(f"{fn.name}: billing must be one of {BILLING_MODES}")
        if fn.db_pool_size is not None and not 1 <= fn.db_pool_size <= 200:
            raise ValueError(f"{fn.name}: db_pool_size must be between 1 and 200")
        if fn.name in seen_names or (fn.method, fn.route) in seen_routes:
            raise ValueError(f"duplicate function {fn.name} or route {fn.method} {fn.route}")
        seen_names.add(fn.name)
        seen_routes.add((fn.method, fn.route))
        out.append(fn)
    return Manifest(defaults=defaults, functions=tuple(out))


def _reject_unknown(where: str, raw: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if not unknown:
        return
    hint = ""
    if {"env", "secrets"} & set(unknown):
        hint = " (env and secrets are derived from the code, see infra/deploy/needs.py: drop the lists)"
    raise ValueError(f"{where}: unknown manifest keys {unknown}{hint}")


def path() -> Path:
    """The manifest file this installation uses."""
    for candidate in _CANDIDATES:
        if candidate.exists():
            return candidate
    raise FileNotFoundError("functions.json not found beside shared/, nor functions.toml in infra/")


def _source_data() -> dict[str, Any]:
    import tomllib  # only where the TOML source is: tools, tests, `make dev`; never a bundle

    with _SOURCE.open("rb") as fh:
        return tomllib.load(fh)


def write_bundle_copy(dest: Path) -> None:
    """Write the manifest as a bundle carries it (`shared/functions.json`): the same data."""
    dest.write_text(json.dumps(_source_data(), indent=1))


@functools.cache
def load() -> Manifest:
    """Load the manifest once per process."""
    source = path()
    return parse(json.loads(source.read_text()) if source.suffix == ".json" else _source_data())
