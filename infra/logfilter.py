"""Evaluate a Cloud Logging query against a log entry, for the subset infra/monitoring uses.

Every log-based metric the deploy creates filters entries with the Logging query language
(https://cloud.google.com/logging/docs/view/logging-query-language). The tests evaluate each
metric's filter against the entry its failure really writes, so a filter that no longer
matches its event fails the suite. This evaluator knows only the subset the filters use, and
refuses anything else rather than guess:

- comparisons `path OP value` with OP one of `=`, `!=`, `>`, `>=`, `<`, `<=`, `:` (has), a
  dotted path into the entry (`jsonPayload.event`, `httpRequest.status`, `resource.type`), and
  a quoted string or a number as the value;
- `severity` compared by level (DEFAULT < DEBUG < INFO < NOTICE < WARNING < ERROR < ...);
- `AND`, `OR`, `NOT`, and parentheses; `AND` binds tighter than `OR`, as documented.

As in Logging, a comparison on a missing field is false (so `!=` on a missing field is false
too), numbers compare numerically when both sides are numbers, and `:` is a substring test.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) |
        (?P<kw>AND|OR|NOT)\b |
        (?P<cmp>(?P<path>[A-Za-z_][\w.]*)\s*(?P<op>>=|<=|!=|=|>|<|:)\s*(?P<value>"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|[A-Z]+))
    )""",
    re.VERBOSE,
)


class FilterError(ValueError):
    """Raised for a filter outside the supported subset."""


def matches(query: str, entry: Mapping[str, Any]) -> bool:
    """Whether `entry` (a LogEntry as a dict) satisfies `query`."""
    tokens = _tokenize(query)
    result, rest = _or(tokens, entry)
    if rest:
        raise FilterError(f"unexpected {rest[0]!r} in {query!r}")
    return result


def _tokenize(query: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(query.rstrip()):
        found = _TOKEN.match(query, pos)
        if not found or found.end() == pos:
            raise FilterError(f"cannot read {query[pos:]!r}")
        pos = found.end()
        if found["lp"] or found["rp"]:
            tokens.append((found["lp"] or found["rp"], None))
        elif found["kw"]:
            tokens.append((found["kw"], None))
        else:
            tokens.append(("cmp", (found["path"], found["op"], _literal(found["value"]))))
    return tokens


def _literal(text: str) -> Any:
    if text.startswith('"'):
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    if text.isupper():
        return text  # a bare word: a severity level
    return float(text) if "." in text else int(text)


def _or(tokens: list[tuple[str, Any]], entry: Mapping[str, Any]) -> tuple[bool, list[tuple[str, Any]]]:
    value, tokens = _and(tokens, entry)
    while tokens and tokens[0][0] == "OR":
        right, tokens = _and(tokens[1:], entry)
        value = value or right
    return value, tokens


def _and(tokens: list[tuple[str, Any]], entry: Mapping[str, Any]) -> tuple[bool, list[tuple[str, Any]]]:
    value, tokens = _unary(tokens, entry)
    while tokens and tokens[0][0] not in ("OR", ")"):
        if tokens[0][0] == "AND":
            tokens = tokens[1:]
        right, tokens = _unary(tokens, entry)  # juxtaposition is AND, as in Logging
        value = value and right
    return value, tokens


def _unary(tokens: list[tuple[str, Any]], entry: Mapping[str, Any]) -> tuple[bool, list[tuple[str, Any]]]:
    if not tokens:
        raise FilterError("the filter ends where a comparison was expected")
    kind, payload = tokens[0]
    if kind == "NOT":
        value, rest = _unary(tokens[1:], entry)
        return not value, rest
    if kind == "(":
        value, rest = _or(tokens[1:], entry)
        if not rest or rest[0][0] != ")":
            raise FilterError("unbalanced parentheses")
        return value, rest[1:]
    if kind == "cmp":
        return _compare(entry, *payload), tokens[1:]
    raise FilterError(f"unexpected {kind!r}")


def _compare(entry: Mapping[str, Any], path: str, op: str, expected: Any) -> bool:
    actual: Any = entry
    for part in path.split("."):
        if not isinstance(actual, Mapping) or part not in actual:
            return False
        actual = actual[part]
    if path == "severity":
        actual, expected = SEVERITIES.index(str(actual)), SEVERITIES.index(str(expected))
    elif isinstance(expected, int | float) and not isinstance(actual, bool):
        try:
            actual = float(actual)
        except (TypeError, ValueError):
            return False
    if op == ":":
        return str(expected) in str(actual)
    if op in ("=", "!="):
        same = actual == expected if not isinstance(expected, str) else str(actual) == expected
        return same if op == "=" else not same
    ordered = {">": actual > expected, ">=": actual >= expected, "<": actual < expected, "<=": actual <= expected}
    return bool(ordered[op])
