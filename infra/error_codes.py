"""The error codes each route can answer, read statically from its handler's call graph.

`route_codes()` maps every function of the manifest to the codes reachable from its entry point:
the handler (and its decorator), the guard for authenticated routes, and every function of
`shared/` or `functions/` they call or pass on (a callback such as `account_of=`), transitively.
A function "raises" a code when its body holds a `code="X"` keyword (an error raised, or a code
handed to a helper that raises it) or builds an error class whose default code is X
(`Forbidden(...)` is FORBIDDEN). Calls are resolved through imports: `module.function(...)`,
names imported from a module (re-exports of a package's `__init__` followed), functions of the
same module, and the methods of `ApiRequest` a handler calls on `req`. Methods of other objects
are not followed; the codes they raise come from the store adapters and the HTTP layer, which
the `default` response documents for every route.

Both directions are kept: every code a route can answer is named by its responses (`undocumented`),
and every code a route's own responses name is one it can answer (`overdocumented`; the shared
responses and `default` describe every route of their kind). `python -m infra.error_codes` prints
both lists; tests/tooling/test_openapi_error_codes.py requires both empty (docs/api.md, "Errors").
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from infra import openapi_norm
from shared import manifest

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("shared", "functions")
GUARD_MODULE = "shared.auth.guard"
# The guard's codes depend on the auth kind it checks (shared.auth.guard.ADMITS): a code listed
# here is answered only for these kinds; every other code of the guard, for every kind.
GUARD_CODE_KINDS = {
    "ADMIN_REQUIRED": {"cc_admin"},
    "ACCOUNT_BLOCKED": {"customer", "any"},  # shared.auth.account_state: customers only
    "ACCOUNT_INACTIVE": {"mitra", "any"},  # mitras only
}
REQUEST_CLASS = ("shared.http", "ApiRequest")
# Codes the call graph reaches on a route but that the route cannot answer, each with the reason
# the static reading over-approximates there. tests/tooling/test_openapi_error_codes.py requires every
# entry to be still reached (no stale entry) and keeps the list short by review.
UNREACHABLE: dict[tuple[str, str], str] = {
    **{
        ("POST /api/client/auth/otp/request", code): "otp.request_code checks the mitra only in the mitra flow"
        for code in ("MITRA_NOT_FOUND", "ACCOUNT_INACTIVE")
    },
    ("POST /api/mitra/auth/otp/request", "PHONE_COUNTRY_NOT_ALLOWED"): "the country list applies to the customer flow",
    **{
        (route, code): "pairing's _TOO_LATE maps this code to other actions; this one answers INVALID_TRANSITION"
        for route, codes in {
            "POST /api/client/chat-sessions/{id}/cancel": ("PAYMENT_DEADLINE_PASSED", "SESSION_EXPIRED"),
            "POST /api/client/chat-sessions/{id}/end": ("PAYMENT_DEADLINE_PASSED", "SESSION_EXPIRED"),
            "POST /api/client/chat-sessions/{id}/reroute": ("PAYMENT_DEADLINE_PASSED", "SESSION_EXPIRED"),
            "POST /internal/chat-sessions/{id}/reroute": ("PAYMENT_DEADLINE_PASSED", "SESSION_EXPIRED"),
            "POST /api/client/chat-sessions/{id}/extend": ("PAYMENT_DEADLINE_PASSED",),
            "POST /api/mitra/chat-sessions/{id}/accept": ("PAYMENT_DEADLINE_PASSED",),
            "POST /api/mitra/chat-sessions/{id}/decline": ("PAYMENT_DEADLINE_PASSED",),
            "POST /api/mitra/chat-sessions/{id}/end": ("PAYMENT_DEADLINE_PASSED", "SESSION_EXPIRED"),
            "POST /internal/chat-sessions/{id}/payment-confirmed": ("SESSION_EXPIRED",),
        }.items()
        for code in codes
    },
    **{
        (
            route,
            "RATE_LIMITED",
        ): "cc_users builds its lockout rules (a Limit naming RATE_LIMITED) to read them, not to count"
        for route in (
            "GET /internal/control-center-users",
            "PATCH /internal/control-center-users/{id}",
            "PATCH /internal/control-center-users/{id}/password",
            "POST /internal/control-center-users/{id}/unlock",
        )
    },
    ("DELETE /api/client/auth/me", "IDENTITY_PROVIDER_ERROR"): "apple.revoke turns a failure into False",
    ("POST /api/client/chat-sessions/{id}/cancel", "RATE_LIMITED"): "cancel reads the request limits for the cooldown",
}
# Codes a route's own responses name that the scan cannot reach: raised by a method of an object
# it does not follow (a provider chosen by configuration, the long-poll registry of the instance).
# The test requires each entry to stay unreached (else it is redundant) and documented.
RAISED_THROUGH_OBJECTS: dict[tuple[str, str], str] = {
    **{
        (route, "OTP_PROVIDER_ERROR"): "raised by the SMS provider object (shared.sms.SmsError)"
        for route in ("POST /api/client/auth/otp/request", "POST /api/mitra/auth/otp/request")
    },
    **{
        (route, "TOO_MANY_WAITS"): "raised by the instance's long-poll registry (shared.chat.longpoll)"
        for route in (
            "GET /api/client/chat-sessions/{id}/messages",
            "GET /api/mitra/chat-sessions/{id}/messages",
            "GET /api/mitra/chat-sessions",
            "GET /api/client/events",
            "GET /api/mitra/events",
        )
    },
    ("POST /api/payments/midtrans/notification", "PAYMENT_PROVIDER_ERROR"): "raised by the payment provider object",
}
_CODE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b[A-Z]{4,}\b")

Ref = tuple[str, str]  # (module, name)


@dataclass
class _Module:
    name: str
    tree: ast.Module
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    imported: dict[str, Ref] = field(default_factory=dict)  # local name -> (module, name) imported
    modules: dict[str, str] = field(default_factory=dict)  # local name -> module it stands for


class Graph:
    """Every module of shared/ and functions/, with what each function raises and reaches."""

    def __init__(self, repo: Path = REPO) -> None:
        self.repo = repo
        self.modules: dict[str, _Module] = {}
        for root in ROOTS:
            for file in sorted((repo / root).rglob("*.py")):
                parts = file.relative_to(repo).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                self.modules[name] = _Module(name, ast.parse(file.read_text(), filename=str(file)))
        for mod in self.modules.values():
            self._index(mod)
        self.error_defaults = self._error_defaults()
        self._direct: dict[Ref, tuple[set[str], set[Ref]]] = {}
        self._guard: dict[str, set[str]] = {}
        self._guard_args: dict[Ref, list[str | None]] = {}  # per function: its guard calls' kinds

    # ---- indexing ---------------------------------------------------------------------------

    def _index(self, mod: _Module) -> None:
        package = mod.name if self._is_package(mod.name) else mod.name.rpartition(".")[0]
        for node in mod.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                mod.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                mod.classes[node.name] = node
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        mod.modules[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
                for alias in node.names:
                    local = alias.asname or alias.name
                    full = f"{base}.{alias.name}"
                    if full in self.modules or self._exists(full):
                        mod.modules[local] = full
                    else:
                        mod.imported[local] = (base, alias.name)
        # Imports inside functions (deferred ones) resolve like module-level ones.
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.ImportFrom) and node not in mod.tree.body and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    full = f"{node.module}.{alias.name}"
                    if self._exists(full):
                        mod.modules.setdefault(local, full)
                    else:
                        mod.imported.setdefault(local, (node.module, alias.name))

    def _exists(self, dotted: str) -> bool:
        path = self.repo.joinpath(*dotted.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()

    def _is_package(self, dotted: str) -> bool:
        return (self.repo.joinpath(*dotted.split(".")) / "__init__.py").is_file()

    def _error_defaults(self) -> dict[Ref, str]:
        """(module, class) -> default code, for every class whose body sets `code`."""
        out: dict[Ref, str] = {}
        for mod in self.modules.values():
            for name, cls in mod.classes.items():
                codes = list(openapi_norm._class_codes(cls))
                if codes:
                    out[(mod.name, name)] = codes[0]
        # A subclass without a code of its own has its base's.
        changed = True
        while changed:
            changed = False
            for mod in self.modules.values():
                for name, cls in mod.classes.items():
                    if (mod.name, name) in out:
                        continue
                    for base in cls.bases:
                        ref = self._resolve_expr(mod, base)
                        if ref in out:
                            out[(mod.name, name)] = out[ref]
                            changed = True
                            break
        return out

    # ---- resolution -------------------------------------------------------------------------

    def _resolve(self, module: str, name: str, depth: int = 0) -> Ref | None:
        """Where `name` of `module` is defined (following re-exports), or None outside the repo."""
        mod = self.modules.get(module)
        if mod is None or depth > 10:
            return None
        if name in mod.functions or name in mod.classes:
            return (module, name)
        if name in mod.imported:
            return self._resolve(*mod.imported[name], depth=depth + 1)
        return None

    def _resolve_expr(self, mod: _Module, node: ast.AST) -> Ref | None:
        if isinstance(node, ast.Name):
            if node.id in mod.functions or node.id in mod.classes:
                return (mod.name, node.id)
            if node.id in mod.imported:
                return self._resolve(*mod.imported[node.id])
            return None
        if isinstance(node, ast.Attribute):
            target = self._module_of(mod, node.value)
            if target is not None:
                return self._resolve(target, node.attr)
            if isinstance(node.value, ast.Name) and node.value.id == "req":
                return (*REQUEST_CLASS[:1], f"{REQUEST_CLASS[1]}.{node.attr}")
        return None

    def _module_of(self, mod: _Module, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return mod.modules.get(node.id)
        if isinstance(node, ast.Attribute):
            parent = self._module_of(mod, node.value)
            full = f"{parent}.{node.attr}" if parent else None
            return full if full and self._exists(full) else None
        return None

    def _body(self, ref: Ref) -> ast.AST | None:
        mod = self.modules.get(ref[0])
        if mod is None:
            return None
        cls_name, _, method = ref[1].partition(".")
        if method:
            cls = mod.classes.get(cls_name)
            found = [n for n in (cls.body if cls else []) if isinstance(n, ast.FunctionDef) and n.name == method]
            return found[0] if found else None
        return mod.functions.get(ref[1])

    # ---- what a function raises -------------------------------------------------------------

    def direct(self, ref: Ref) -> tuple[set[str], set[Ref]]:
        """Codes raised in the body of `ref` itself, and the functions it calls or passes on."""
        if ref not in self._direct:
            self._direct[ref] = self._scan(ref)
        return self._direct[ref]

    def _scan(self, ref: Ref) -> tuple[set[str], set[Ref]]:
        body = self._body(ref)
        mod = self.modules[ref[0]]
        codes: set[str] = set()
        reached: set[Ref] = set()
        if body is None:
            return codes, reached
        nodes: list[ast.AST] = [body]
        if isinstance(body, ast.FunctionDef | ast.AsyncFunctionDef):
            nodes += body.decorator_list
        for top in nodes:
            for node in ast.walk(top):
                if isinstance(node, ast.Call):
                    literal = [
                        k.value.value for k in node.keywords if k.arg == "code" and isinstance(k.value, ast.Constant)
                    ]
                    codes.update(c for c in literal if isinstance(c, str))
                    target = self._resolve_expr(mod, node.func)
                    if target in self.error_defaults and not any(k.arg == "code" for k in node.keywords):
                        codes.add(self.error_defaults[target])
                if isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
                    target = self._resolve_expr(mod, node)
                    if target is not None and target != ref and self._body(target) is not None:
                        reached.add(target)
        for (module, expr), source in openapi_norm.COMPUTED_CODES.items():
            if source is not None and self._path(ref[0]) == module and expr in ast.unparse(body):
                codes.update(openapi_norm._strings(openapi_norm._module_constant(mod.tree, source)))
        return codes, reached

    def _path(self, module: str) -> str:
        rel = Path(*module.split("."))
        return (rel / "__init__.py" if self._is_package(module) else rel.with_suffix(".py")).as_posix()

    def reachable(self, roots: list[Ref], kind: str = "none") -> set[str]:
        """Every code raised by the roots or anything they reach.

        The guard is not walked into: a call of it adds its codes for the auth kind it is given
        (a literal third argument or `kind=`), else for the route's `kind`.
        """
        seen: set[Ref] = set()
        stack = list(roots)
        codes: set[str] = set()
        while stack:
            ref = stack.pop()
            if ref in seen:
                continue
            seen.add(ref)
            raised, reached = self.direct(ref)
            codes |= raised
            for guard_kind in self._guard_calls(ref, kind):
                codes |= self.guard_codes(guard_kind)
            stack.extend(r for r in reached - seen if r[0] != GUARD_MODULE)
        return codes

    def guard_codes(self, kind: str) -> set[str]:
        """The codes the guard can answer for a route of auth `kind`."""
        if "" not in self._guard:
            self._guard[""] = self.reachable([(GUARD_MODULE, n) for n in self.modules[GUARD_MODULE].functions], "guard")
        return {c for c in self._guard[""] if kind in GUARD_CODE_KINDS.get(c, {kind})}

    def _guard_calls(self, ref: Ref, kind: str) -> Iterator[str]:
        if ref[0] == GUARD_MODULE or kind == "guard":
            return
        if ref not in self._guard_args:
            self._guard_args[ref] = list(self._guard_kinds_given(ref))
        for given in self._guard_args[ref]:
            yield given or kind

    def _guard_kinds_given(self, ref: Ref) -> Iterator[str | None]:
        """Per call of the guard in `ref`: the auth kind it is given, or None for the route's."""
        body = self._body(ref)
        mod = self.modules[ref[0]]
        for node in ast.walk(body) if body is not None else ():
            if isinstance(node, ast.Call):
                target = self._resolve_expr(mod, node.func)
                if target is not None and target[0] == GUARD_MODULE:
                    args = [*node.args[2:3], *(k.value for k in node.keywords if k.arg == "kind")]
                    given = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                    yield given[0] if given else None


def route_codes(graph: Graph | None = None) -> dict[manifest.Function, set[str]]:
    """Function of the manifest -> the error codes its route can answer."""
    graph = graph or Graph()
    out = {}
    for fn in manifest.load().functions:
        codes = graph.reachable([(f"functions.{fn.group}.main", fn.entry_point)], fn.auth)
        if fn.auth in ("customer", "mitra", "cc", "cc_admin", "any"):
            codes |= graph.guard_codes(fn.auth)
        out[fn] = codes
    return out


# ---- what openapi.yaml documents -----------------------------------------------------------


def documented_codes(doc: dict, method: str, path: str, known: set[str]) -> set[str]:
    """The codes named by an operation's responses (their descriptions, `$ref`s followed)."""
    op = doc["paths"][path][method]
    texts: list[str] = [op.get("description", ""), op.get("summary", "")]
    for response in op.get("responses", {}).values():
        texts.extend(_texts(doc, response))
    return {c for text in texts for c in _CODE.findall(text)} & known


def _texts(doc: dict, node: object) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/responses/"):
            yield from _texts(doc, doc["components"]["responses"][ref.rsplit("/", 1)[1]])
        description = node.get("description")
        if isinstance(description, str):
            yield description


def undocumented(doc: dict, graph: Graph | None = None) -> dict[str, set[str]]:
    """`METHOD path` -> codes its route can answer that its responses do not name."""
    known = set(doc["components"]["schemas"]["ErrorCode"]["enum"])
    gaps = {}
    for fn, codes in route_codes(graph).items():
        path = openapi_norm.openapi_path(fn.route)
        route = f"{fn.method} {path}"
        missing = {
            c for c in codes - documented_codes(doc, fn.method.lower(), path, known) if (route, c) not in UNREACHABLE
        }
        if missing:
            gaps[route] = missing
    return gaps


def http_layer_codes(doc: dict) -> set[str]:
    """The codes every route can answer, named by the `default` response (components/responses/Error)."""
    known = set(doc["components"]["schemas"]["ErrorCode"]["enum"])
    return set(_CODE.findall(doc["components"]["responses"]["Error"]["description"])) & known


def own_codes(doc: dict, method: str, path: str, known: set[str]) -> set[str]:
    """The codes an operation's own responses name (inline ones, not shared `$ref`s or `default`)."""
    op = doc["paths"][path][method]
    texts = [r.get("description", "") for s, r in op["responses"].items() if s != "default" and "$ref" not in r]
    return {c for text in texts for c in _CODE.findall(text)} & known


def overdocumented(doc: dict, graph: Graph | None = None) -> dict[str, set[str]]:
    """`METHOD path` -> codes its own responses name that the route cannot answer (stale documentation)."""
    known = set(doc["components"]["schemas"]["ErrorCode"]["enum"])
    generic = http_layer_codes(doc)
    extra = {}
    for fn, codes in route_codes(graph).items():
        path = openapi_norm.openapi_path(fn.route)
        route = f"{fn.method} {path}"
        stale = {
            c
            for c in own_codes(doc, fn.method.lower(), path, known) - codes - generic
            if (route, c) not in RAISED_THROUGH_OBJECTS
        }
        if stale:
            extra[route] = stale
    return extra


def main() -> int:
    doc = openapi_norm.load_spec()
    graph = Graph()
    gaps = undocumented(doc, graph)
    for route, codes in sorted(gaps.items()):
        print(f"{route}: can answer {', '.join(sorted(codes))}, not documented")
    stale = overdocumented(doc, graph)
    for route, codes in sorted(stale.items()):
        print(f"{route}: documents {', '.join(sorted(codes))}, cannot answer it")
    return 1 if gaps or stale else 0


if __name__ == "__main__":
    sys.exit(main())
