"""What each function reads from its environment, derived from its code: no hand-kept lists.

A variable is read by a function when a module its group's `main.py` reaches (the same
walk `infra/bundle.py` makes) reads the Settings field of that name (`settings.auth_jwt_previous_secrets` reads
AUTH_JWT_PREVIOUS_SECRETS) or names it in `os.environ` / `os.getenv`. So a function that
checks JWTs mounts AUTH_JWT_PREVIOUS_SECRETS because the guard reads it, and a variable
nothing reads is mounted nowhere.

A few narrowings keep the mounts to what a function does, not merely what its group can do:
- CC_ORIGIN (CORS for the control center) only on /internal routes;
- APP_WEB_ORIGINS (CORS for the apps' web builds) only on /api routes;
- DATABASE_URL xor the Cloud SQL connector's settings, DB_PASSWORD only without IAM auth;
- the Fazpass keys only when OTP_PROVIDER is fazpass;
- the Midtrans server key only when PAYMENT_PROVIDER is midtrans;
- VALKEY_CA_CERT / VALKEY_CA_FILE only when the deployment configures one.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path

from infra import bundle
from shared import config, manifest

_SETTINGS = {f.name for f in fields(config.Settings)}
TRUTHY = ("1", "true", "yes", "on")


def _names_in(path: Path) -> set[str]:
    """Environment variables one source file reads (Settings attributes and os.environ keys)."""
    return set(_names_in_source(path.read_text(), str(path)))


@functools.lru_cache(maxsize=4096)
def _names_in_source(source: str, filename: str) -> frozenset[str]:
    """_names_in of one file's text (every group reaches the same files)."""
    found: set[str] = set()
    for node in bundle.syntax_nodes(source, filename):
        if isinstance(node, ast.Attribute) and node.attr in _SETTINGS:
            found.add(node.attr.upper())
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if not (isinstance(func, ast.Attribute) and func.attr in ("get", "getenv")):
                continue  # the only calls named below; unparsing every call costs more than the walk
            if ast.unparse(func) in ("os.environ.get", "os.getenv", "environ.get") and isinstance(
                node.args[0].value, str
            ):
                found.add(node.args[0].value)
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) in ("os.environ", "environ")
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            found.add(node.slice.value)
    return frozenset(found)


@functools.cache
def _reads(group: str) -> frozenset[str]:
    main_py = bundle.FUNCTIONS_DIR / group / "main.py"
    modules, _ = bundle.reachable(main_py)
    files = [main_py]
    for name in modules:
        file = bundle._module_file(name, bundle.SHARED_DIR)
        if file is not None:
            files.append(file)
    found: set[str] = set()
    for file in files:
        found |= _names_in(file)
    return frozenset(found)


def reads(fn: manifest.Function) -> frozenset[str]:
    """Every environment variable `fn` can read (before the deployment's narrowings)."""
    found = set(_reads(fn.group))
    if not fn.route.startswith("/internal"):
        found.discard("CC_ORIGIN")
    if not fn.route.startswith("/api/"):
        found.discard("APP_WEB_ORIGINS")
    return frozenset(found)


def secret_names(fn: manifest.Function, env: Mapping[str, str], configured: Iterable[str] = ()) -> list[str]:
    """The secrets `fn` mounts under this deployment's env (sorted, as the deploy passes them)."""
    wanted = set(reads(fn)) & set(config.SECRET_VARIABLES)
    cloud_sql = bool(env.get("CLOUD_SQL_INSTANCE"))
    if cloud_sql:
        wanted.discard("DATABASE_URL")
        if (env.get("DB_IAM_AUTH") or "").strip().lower() in TRUTHY:
            wanted.discard("DB_PASSWORD")
    else:
        wanted.discard("DB_PASSWORD")
    if (env.get("OTP_PROVIDER") or config.default("OTP_PROVIDER")).strip().lower() != "fazpass":
        wanted -= {"FAZPASS_MERCHANT_KEY", "FAZPASS_GATEWAY_KEY"}
    if (env.get("PAYMENT_PROVIDER") or config.default("PAYMENT_PROVIDER")).strip().lower() != "midtrans":
        wanted.discard("MIDTRANS_SERVER_KEY")
    if "VALKEY_CA_CERT" not in set(configured):
        wanted.discard("VALKEY_CA_CERT")
    return sorted(wanted)


def env_names(fn: manifest.Function) -> frozenset[str]:
    """The non-secret variables `fn` reads."""
    return reads(fn) - set(config.SECRET_VARIABLES)


def read_by_any(functions: Iterable[manifest.Function]) -> frozenset[str]:
    """Every variable at least one of `functions` reads."""
    out: set[str] = set()
    for fn in functions:
        out |= reads(fn)
    return frozenset(out)
