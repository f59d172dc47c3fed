"""Apply the SQL files in migrations/ in order, each once, recording the versions applied.

Safe to run twice (applied versions are skipped) and from several processes at once: the
whole run holds a Postgres advisory lock, so a second runner waits and then finds nothing
to do. All pending files and their version rows commit in one transaction: all or nothing.

    python -m infra.migrate            # uses DATABASE_URL
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from shared import config
from shared.db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
LOCK_KEY = 0x62657374  # "best": one fixed advisory-lock key for the migration runner

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every NNNN_name.sql file, ordered by name."""
    return [Migration(p.stem, p.read_text()) for p in sorted(directory.glob("*.sql"))]


def migrate(db: Database, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations under an advisory lock; return the versions applied now."""
    migrations = discover() if migrations is None else migrations
    applied_now: list[str] = []
    with db.transaction() as tx:
        # A transaction-level lock: released by the final commit/rollback, even on a crash.
        tx.execute("SELECT pg_advisory_xact_lock(:k)", k=LOCK_KEY)
        tx.script(_CREATE_TABLE)
        done = {r["version"]: r["checksum"] for r in tx.rows("SELECT version, checksum FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise RuntimeError(f"migration {migration.version} changed after it was applied")
                continue
            tx.script(migration.sql)
            tx.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (:v, :c)",
                v=migration.version,
                c=migration.checksum,
            )
            applied_now.append(migration.version)
        tx.commit()
    return applied_now


def _run() -> None:
    db = Database(config.load(required=(config.DATABASE,)))
    try:
        applied = migrate(db)
    finally:
        db.close()
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


def main() -> int:
    """Migrate DATABASE_URL, or the `make dev` embedded database when it is unset."""
    if os.environ.get("DATABASE_URL") or os.environ.get("CLOUD_SQL_INSTANCE"):
        _run()
        return 0
    from infra import embedded
    from infra.dev import DATA

    os.environ.setdefault("VALKEY_URL", "redis://unused")  # migrations never touch Valkey
    with embedded.services(DATA, persistent=True) as env:
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
        _run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
