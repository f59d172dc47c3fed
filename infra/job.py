"""`python -m infra.job`: the migration job's entry point, run by Cloud Run inside the VPC.

The deploy builds it from the same code as the functions (infra/deploy/migration_job.py) and
executes it before any function rolls out, because Cloud SQL has only a private IP and the
Cloud SQL Auth Proxy on a workstation cannot reach it. It connects like the functions do
(CLOUD_SQL_INSTANCE + DB_USER with IAM database auth, or DATABASE_URL) as its own IAM user,
which owns the schema, and:

1. applies pending migrations (infra/migrate.py: one transaction under an advisory lock, each
   file once; a migrated database is a no-op);
2. grants DB_GRANT_TO (the functions' IAM user) the table and sequence privileges they use,
   now and for tables later migrations create;
3. when ADMIN_EMAIL is set (with ADMIN_PASSWORD mounted from Secret Manager), creates the
   first control-center admin (infra/bootstrap.py: an existing email is left unchanged).

Every step is idempotent, so running it on every deploy is safe. Exit status 0 on success.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

from infra import bootstrap, migrate
from shared import config
from shared.db import Database
from shared.errors import ConfigError

# A Cloud SQL IAM user is an email (a service account's without ".gserviceaccount.com").
ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,62}$")

_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
)


def grant(db: Database, role: str) -> None:
    """Give `role` what the functions do with the schema: read and write rows, never DDL."""
    if not ROLE_NAME.match(role):
        raise ConfigError(f"DB_GRANT_TO is not a database user name: {role!r}")
    with db.transaction() as tx:
        # A role name cannot be a bind parameter; Postgres quotes it (quote_ident) after the
        # pattern above has already limited what it may contain.
        quoted = tx.rows("SELECT quote_ident(:r) AS q", r=role)[0]["q"]
        for statement in _GRANTS:
            tx.execute(statement.format(role=quoted))
        tx.commit()


def _no_prompt(question: str) -> str:
    raise ConfigError(f"the job cannot prompt ({question.strip()})")  # both values are checked first


def main(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    try:
        settings = config.Settings.from_env(env, required=(config.DATABASE,))
    except ConfigError as exc:
        print(f"job: {exc}", file=sys.stderr)
        return 2
    db = Database(settings)
    try:
        applied = migrate.migrate(db)
        print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}", flush=True)
        role = (env.get("DB_GRANT_TO") or "").strip()
        if role:
            grant(db, role)
            print(f"granted {role} the functions' table privileges", flush=True)
    except ConfigError as exc:
        print(f"job: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    if (env.get("ADMIN_EMAIL") or "").strip():
        if not env.get("ADMIN_PASSWORD"):
            print("job: ADMIN_EMAIL is set but ADMIN_PASSWORD is not mounted", file=sys.stderr)
            return 2
        return bootstrap.main([], environ=env, ask=_no_prompt, ask_secret=_no_prompt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
