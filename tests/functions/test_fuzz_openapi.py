"""Schemathesis against openapi.yaml: every documented operation, fuzzed in process.

All functions of the manifest are served by the local gateway (each built with
functions-framework's create_app, as in production). Each case carries a fresh, valid token of
the user type its route expects (customer, mitra, cc, cc_admin), so the fuzzer reaches the
handlers rather than stopping at 401. Checked: no 5xx, and every status code, content type
and body is the one openapi.yaml documents. Bounded: a fixed number of examples per
operation, no example database, no shrinking. Each operation's test is built when it runs, not
at collection, which every xdist worker does (tests/support/lazy_schemathesis.py).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra import gateway
from infra.apple_standin import AppleStandIn
from shared import manifest
from shared.config import Settings
from shared.context import AppContext
from tests.conftest import _admin_connection, _url_for
from tests.support import lazy_schemathesis
from tests.support.helpers import installed
from tests.support.loopback import RsaKey, StubServer
from tests.support.mirror_state import new_mitra
from tests.support.tokens import _token

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

lazy_schemathesis.defer()
schema = schemathesis.openapi.from_path(REPO / "openapi.yaml")
schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, database="none", no_shrink=True)


class Principals:
    """One user of each type; every case gets a fresh session of the one its route needs."""

    def __init__(self, ctx: AppContext, app: gateway.Gateway) -> None:
        self.ctx = ctx
        self.app = app
        with ctx.db.transaction() as tx:
            self.customer = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('fuzz') RETURNING id"))
            self.staff = {
                role: str(
                    tx.scalar(
                        "INSERT INTO control_center_users (email, password_hash, role)"
                        " VALUES (:e, 'unused', :r) RETURNING id",
                        e=f"fuzz-{role}-{uuid.uuid4().hex[:8]}@bestie.test",
                        r=role,
                    )
                )
                for role in ("admin", "operator")
            }
            tx.commit()
        self.mitra = new_mitra(ctx)

    def authorization(self, auth: str) -> dict[str, str]:
        if auth in ("customer", "any"):
            token = _token(self.ctx, "customer", self.customer)[0]
        elif auth == "mitra":
            token = _token(self.ctx, "mitra", self.mitra)[0]
        elif auth == "cc":
            token = _token(self.ctx, "cc", self.staff["operator"], "operator")[0]
        elif auth == "cc_admin":
            token = _token(self.ctx, "cc", self.staff["admin"], "admin")[0]
        else:
            return {}
        return {"Authorization": f"Bearer {token}"}


def _one_pass_sweeps(settings_: Settings) -> dict[str, int]:
    # A sub-minute cadence makes one call run (and sleep between) several passes.
    return {f.name: max(60, getattr(settings_, f.name)) for f in fields(settings_) if f.name.endswith("_sweep_seconds")}


@pytest.fixture(scope="module")
def principals(template_db: str, test_env: dict[str, str]) -> Iterator[Principals]:
    """A database of its own (the fuzzer changes app_config) and loopback Google/Apple keys."""
    name = f"fuzz_{uuid.uuid4().hex[:12]}"
    with _admin_connection(test_env["DATABASE_URL"]) as admin:
        admin.run(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    google, apple = RsaKey(), RsaKey()
    keys = StubServer().start()
    keys.routes["/oauth2/v1/certs"] = (200, google.certs(), 0.0)
    keys.routes["/auth/keys"] = (200, apple.jwks(), 0.0)
    apple_api = AppleStandIn(signing_key=apple.private, signing_kid=apple.kid).start()
    apple_settings = {k.lower(): v for k, v in apple_api.settings().items() if k != "APPLE_JWKS_URL"}
    base = Settings.from_env()
    settings_ = replace(
        base,
        database_url=_url_for(test_env["DATABASE_URL"], name),
        **_one_pass_sweeps(base),
        valkey_prefix=f"fuzz{uuid.uuid4().hex[:8]}:",
        chat_max_wait_seconds=1,  # a generated `wait` of up to 25 s is held 1 s: the same answer, sooner
        google_oauth_client_ids=("fuzz.apps.googleusercontent.com",),
        google_certs_url=keys.url + "/oauth2/v1/certs",
        apple_services_id="id.bestie.fuzz",
        apple_jwks_url=keys.url + "/auth/keys",
        apple_token_encryption_key=base64.b64encode(os.urandom(32)).decode(),
        apple_android_package="id.bestie.fuzz",
        **apple_settings,
    )
    try:
        with installed(AppContext(settings_)) as ctx:
            # Built once the test environment exists: each entry point reads it at import.
            app = gateway.Gateway(gateway.local_plan(enable_test_endpoints=True))
            yield Principals(ctx, app)
    finally:
        keys.stop()
        apple_api.stop()
        with _admin_connection(test_env["DATABASE_URL"]) as admin:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _function_for(case: Any) -> manifest.Function | None:
    path = case.formatted_path
    for fn in manifest.load().functions:
        if fn.method == case.method.upper() and fn.match_exact(path) is not None:
            return fn
    return None


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_and_never_5xx(case: Any, principals: Principals) -> None:
    fn = _function_for(case)
    headers = principals.authorization(fn.auth) if fn else {}
    n = uuid.uuid4().int  # IPv4 and IPv6 clients alike (per-IP limits key IPv6 by its /64)
    v4, v6 = f"10.{n % 250}.{(n >> 8) % 250}.1", f"2001:db8:{(n >> 16) % 0xFFFF:x}::{(n >> 32) % 0xFFFF:x}"
    headers["X-Forwarded-For"] = v6 if n % 2 else v4
    case.call_and_validate(base_url="http://localhost", app=principals.app, headers=headers, checks=CHECKS)
