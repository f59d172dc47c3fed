"""Bring every operation of openapi.yaml up to what client generators need; re-run after adding routes.

`python -m infra.openapi_norm` rewrites openapi.yaml in place, by lines, so the rest of the file
keeps its hand formatting and a re-run after new routes is a small diff:

- every operation's `operationId` is its function's name in infra/functions.toml, and its one
  tag the route's audience (`audience`);
- every operation has a `default` response: the one Error body (`components/responses/Error`);
- the `ErrorCode` enum lists every error code the backend can raise (`raised_codes`).

`--check` changes nothing and exits 1 when the file is not normalized (tests/tooling/test_openapi.py
runs the same checks). docs/api.md says what each rule is for.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared import manifest

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "openapi.yaml"
# The packages whose raised errors reach a response.
CODE_ROOTS = (REPO / "shared", REPO / "functions")
METHODS = ("get", "post", "put", "patch", "delete")
DEFAULT_RESPONSE = '{$ref: "#/components/responses/Error"}'
# Route prefix -> the audience tag (the first match wins).
AUDIENCES = (
    ("/api/client/", "client"),
    ("/api/mitra/", "mitra"),
    ("/api/shared/", "shared"),
    ("/sweeps/", "sweeps"),
    ("/internal/", "internal"),
    ("/healthz", "internal"),
    ("/api/apple/", "apple"),  # called by Apple (notifications, the Android/web callback), not by the apps
    ("/api/payments/", "payments"),  # called by the payment gateway
)
# Codes raised through an expression rather than a literal: where, and the module-level
# constant holding every value it can take (None: the values are literals elsewhere, such as
# ratelimit.Limit's `code` field and its default, which the scan already finds).
COMPUTED_CODES = {
    ("shared/pairing/service.py", "too_late"): "_TOO_LATE",
    ("shared/ratelimit.py", "rule.code"): None,
}
_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def load_spec(text: str | None = None) -> dict[str, Any]:
    """openapi.yaml (or `text`) parsed, by libyaml when PyYAML was built with it: the same
    document about four times faster than PyYAML's pure-Python parser (0.1 s against 0.45 s)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc: dict[str, Any] = yaml.load(SPEC.read_text() if text is None else text, Loader=loader)  # noqa: S506 (a safe loader)
    return doc


def audience(route: str) -> str:
    """The tag of a route: who calls it."""
    for prefix, tag in AUDIENCES:
        if route.startswith(prefix):
            return tag
    raise ValueError(f"{route}: no audience; add its prefix to infra/openapi_norm.py AUDIENCES")


def openapi_path(route: str) -> str:
    return re.sub(r":(\w+)", r"{\1}", route)


def operations() -> dict[tuple[str, str], manifest.Function]:
    """(method, openapi path) -> its function."""
    return {(fn.method.lower(), openapi_path(fn.route)): fn for fn in manifest.load().functions}


# ---- error codes ----------------------------------------------------------------------------


def _strings(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and _CODE.match(sub.value):
            yield sub.value


def _module_constant(tree: ast.Module, name: str) -> ast.AST:
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            return node.value
    raise LookupError(name)


def _class_codes(node: ast.ClassDef) -> Iterator[str]:
    """`code = "X"`, `code: str = "X"` and `status, code, message = 400, "X", "..."` in a class body."""
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "code":
            if stmt.value is not None:
                yield from _strings(stmt.value)
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name) and target.id == "code":
                    yield from _strings(stmt.value)
                elif isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple):
                    for t, v in zip(target.elts, stmt.value.elts, strict=False):
                        if isinstance(t, ast.Name) and t.id == "code":
                            yield from _strings(v)


def raised_codes(roots: tuple[Path, ...] = CODE_ROOTS) -> set[str]:
    """Every error code the code can put in a response, read from the source.

    Literal `code=` arguments, `code` class attributes (the ApiError subclasses and their
    defaults), and the computed codes of COMPUTED_CODES; a `code=` parameter passed through is
    its callers' business. Any other computed `code=` is an error:
    a code the scan cannot see would be missing from the documented enum.
    """
    codes: set[str] = set()
    for root in roots:
        for file in sorted(root.rglob("*.py")):
            rel = file.relative_to(REPO).as_posix() if file.is_relative_to(REPO) else file.name
            tree = ast.parse(file.read_text(), filename=rel)
            params: dict[int, set[str]] = {}  # call -> the parameters of its innermost function
            for fn in ast.walk(tree):
                if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    names = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)}
                    for sub in ast.walk(fn):
                        params[id(sub)] = names
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    codes.update(_class_codes(node))
                elif isinstance(node, ast.Call):
                    for kw in node.keywords:
                        if kw.arg != "code":
                            continue
                        if isinstance(kw.value, ast.Constant):
                            if isinstance(kw.value.value, str):
                                codes.add(kw.value.value)
                            continue
                        expr = ast.unparse(kw.value)
                        if isinstance(kw.value, ast.Name) and expr in params.get(id(node), set()):
                            continue  # a parameter passed through: its callers' literals are scanned
                        if (rel, expr) not in COMPUTED_CODES:
                            raise ValueError(
                                f"{rel}:{node.lineno}: error code computed as `{expr}`: use a literal, "
                                "or add where its values come from to infra/openapi_norm.py COMPUTED_CODES"
                            )
                        source = COMPUTED_CODES[(rel, expr)]
                        if source is not None:
                            codes.update(_strings(_module_constant(tree, source)))
    return codes


# ---- the line rewrite ------------------------------------------------------------------------


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The index after the block opened at `start` (lines indented deeper than `indent`)."""
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def _normalize_operation(lines: list[str], start: int, fn: manifest.Function) -> list[str]:
    """The lines of one operation (`    get:` and its block), normalized."""
    end = _block_end(lines, start, 4)
    body = [line for line in lines[start + 1 : end] if not re.match(r"^      (operationId|tags):", line)]
    out = [lines[start], f"      operationId: {fn.name}", f"      tags: [{audience(fn.route)}]", *body]
    for i, line in enumerate(out):
        if re.match(r"^      responses:\s*$", line):
            resp_end = _block_end(out, i, 6)
            if not any(re.match(r"^        default:", x) for x in out[i + 1 : resp_end]):
                out.insert(resp_end, f"        default: {DEFAULT_RESPONSE}")
            break
    else:
        raise ValueError(f"{fn.method} {fn.route}: no block-style `responses:` in openapi.yaml")
    return out


def _normalize_codes(lines: list[str], codes: set[str]) -> list[str]:
    for i, line in enumerate(lines):
        if re.match(r"^    ErrorCode:\s*$", line):
            end = _block_end(lines, i, 4)
            for j in range(i + 1, end):
                if re.match(r"^      enum:\s*$", lines[j]):
                    enum_end = _block_end(lines, j, 6)
                    return lines[: j + 1] + [f"        - {c}" for c in sorted(codes)] + lines[enum_end:]
    raise ValueError("openapi.yaml has no components/schemas/ErrorCode with a block-style `enum:`")


def normalize(text: str) -> str:
    """openapi.yaml's text with every operation and the ErrorCode enum normalized."""
    ops = operations()
    lines = text.splitlines()
    out: list[str] = []
    path: str | None = None
    in_paths = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith(" ") and line.strip():
            in_paths = line.rstrip() == "paths:"
        elif in_paths and (m := re.match(r"^  (/\S*):\s*$", line)):
            path = m.group(1)
        elif in_paths and path and (m := re.match(r"^    (\w+):\s*$", line)) and m.group(1) in METHODS:
            fn = ops.get((m.group(1), path))
            if fn is None:
                raise ValueError(f"{m.group(1).upper()} {path} is documented but not in infra/functions.toml")
            end = _block_end(lines, i, 4)
            out.extend(_normalize_operation(lines, i, fn))
            i = end
            continue
        out.append(line)
        i += 1
    return "\n".join(_normalize_codes(out, raised_codes())) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when not normalized")
    args = parser.parse_args(argv)
    text = SPEC.read_text()
    wanted = normalize(text)
    if wanted == text:
        return 0
    if args.check:
        print("openapi.yaml is not normalized: run `python -m infra.openapi_norm`", file=sys.stderr)
        return 1
    SPEC.write_text(wanted)
    print("openapi.yaml normalized")
    return 0


if __name__ == "__main__":
    sys.exit(main())
