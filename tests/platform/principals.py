"""Callers of the deployed functions: a real principal of each auth kind and its access token."""

from __future__ import annotations

import secrets
from dataclasses import replace

from shared import manifest
from shared.config import Settings
from shared.context import AppContext
from tests.support.tokens import _token, cc_token


def signing_context(secret: str) -> AppContext:
    """A context of the test servers that signs access tokens with `secret` only."""
    settings = replace(Settings.from_env(), auth_jwt_secret=secret, auth_jwt_previous_secrets=())
    return AppContext(settings)


def token_for(ctx: AppContext, fn: manifest.Function) -> str:
    """An access token of a new, real principal of the kind `fn` authenticates."""
    if fn.auth in ("cc", "cc_admin"):
        return cc_token(ctx, "admin")
    kind = "mitra" if fn.auth == "mitra" else "customer"
    table = "mitras" if kind == "mitra" else "customers"
    with ctx.db.transaction() as tx:
        if kind == "mitra":
            user_id = str(
                tx.scalar(
                    "INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'Rotation') RETURNING id",
                    p=f"+62812{secrets.randbelow(10**8):08d}",
                )
            )
        else:
            user_id = str(tx.scalar(f"INSERT INTO {table} (is_anonymous) VALUES (true) RETURNING id"))  # noqa: S608
        tx.commit()
    return _token(ctx, kind, user_id)[0]
