"""`python -m infra bootstrap-admin`: the first control-center admin of a fresh project.

Reads ADMIN_EMAIL and ADMIN_PASSWORD (or prompts for them, the password without echo) and
creates that admin unless an account with the email exists: running it again changes
nothing, so it is safe in a deploy script. It connects like the functions do
(DATABASE_URL, or CLOUD_SQL_INSTANCE + DB_USER/DB_NAME with IAM auth or DB_PASSWORD) and
needs no Valkey. The password is checked against the same policy as the control center's.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from shared import config
from shared.context import AppContext
from shared.errors import ApiError, ConfigError


def main(
    argv: Sequence[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
    ask: Callable[[str], str] = input,
    ask_secret: Callable[[str], str] = getpass.getpass,
) -> int:
    from shared.auth.cc_users import ensure_admin

    env = os.environ if environ is None else environ
    if argv:
        print("usage: python -m infra bootstrap-admin  (ADMIN_EMAIL / ADMIN_PASSWORD, or prompts)", file=sys.stderr)
        return 2
    email = (env.get("ADMIN_EMAIL") or ask("admin email: ")).strip()
    password = env.get("ADMIN_PASSWORD") or ask_secret("admin password: ")
    if not email or "@" not in email:
        print("bootstrap-admin: an email address is required", file=sys.stderr)
        return 2
    try:
        settings = config.Settings.from_env(env, required=(config.DATABASE,))
    except ConfigError as exc:
        print(f"bootstrap-admin: {exc}", file=sys.stderr)
        return 2
    ctx = AppContext(settings)
    try:
        created = ensure_admin(ctx, email, password)
    except ApiError as exc:  # the password policy
        print(f"bootstrap-admin: {exc.message}", file=sys.stderr)
        return 2
    finally:
        ctx.close()
    print(f"control-center admin {email}: {'created' if created else 'already exists, unchanged'}")
    return 0
