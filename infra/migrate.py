"""Apply the SQL files in migrations/ in order, each once, recording the versions applied.

Safe to run twice (applied versions are skipped) and from several processes at once: the run
holds a session-level Postgres advisory lock on a connection of its own, so a second runner
waits (polling, see `migrate`) and then finds nothing to do.

Built to run against a live database (docs/migrations.md):
- each file commits on its own, together with its `schema_migrations` row, so a lock taken by
  one file is released when that file commits, not when the last one does;
- each file runs with a `lock_timeout` (default 5 s): a statement that cannot get its lock
  gives up instead of queueing every read and write of the table behind it, and the file is
  retried after a pause (default 5 attempts);
- each file has a `statement_timeout` of its own (default 10 min), not the request pool's;
- a file whose first line is `-- migrate: no-transaction` runs outside a transaction, for
  `CREATE INDEX CONCURRENTLY` and `DROP INDEX CONCURRENTLY`. It holds one statement, written
  so that it can run again (`IF NOT EXISTS` / `IF EXISTS`), since a failure between the
  statement and its version row leaves the statement applied.
- a file changed after it was applied is refused, unless superseded.json lists the checksum it
  was applied with: an edit that changed comments only, proven from git history by a test.

    python -m infra.migrate            # uses DATABASE_URL
    python -m infra.migrate --lock-timeout-ms 2000 --attempts 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared import config
from shared.db import Database, Tx

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
LOCK_KEY = 0x62657374  # "best": one fixed advisory-lock key for the migration runner
NO_TRANSACTION = "-- migrate: no-transaction"
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock_timeout
LOCK_POLL_SECONDS = 0.2
SUPERSEDED = "superseded.json"

log = logging.getLogger(__name__)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""
_RECORD = "INSERT INTO schema_migrations (version, checksum) VALUES (:v, :c)"


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        """False for a file that opts out of the transaction with its first line."""
        return self.sql.lstrip().splitlines()[0].strip() != NO_TRANSACTION if self.sql.strip() else True


@dataclass(frozen=True)
class Limits:
    """How long one migration may wait for a lock and run, and how often a lock wait is retried."""

    lock_timeout_ms: int = 5_000
    statement_timeout_ms: int = 600_000
    attempts: int = 5
    pause_seconds: float = 2.0


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every NNNN_name.sql file, ordered by name."""
    return [Migration(p.stem, p.read_text()) for p in sorted(directory.glob("*.sql"))]


def load_superseded(directory: Path = MIGRATIONS_DIR) -> dict[str, list[str]]:
    """Earlier checksums of applied files whose later edits changed comments only (superseded.json)."""
    path = directory / SUPERSEDED
    if not path.exists():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}


def migrate(
    db: Database,
    migrations: list[Migration] | None = None,
    limits: Limits | None = None,
    sleep: Callable[[float], None] = time.sleep,
    directory: Path = MIGRATIONS_DIR,
) -> list[str]:
    """Apply pending migrations under an advisory lock, each in its own commit; return those applied now."""
    migrations = discover(directory) if migrations is None else migrations
    limits = limits or Limits()
    applied_now: list[str] = []
    with db.dedicated() as session:
        # Polled, not waited for inside one statement: a runner blocked in pg_advisory_lock holds a
        # snapshot, and the other runner's CREATE INDEX CONCURRENTLY waits for every snapshot, so
        # the two would wait on each other through the client. Released when the connection closes.
        while not session.scalar("SELECT pg_try_advisory_lock(:k)", k=LOCK_KEY):
            sleep(LOCK_POLL_SECONDS)
        session.script(_CREATE_TABLE)
        done = {r["version"]: r["checksum"] for r in session.rows("SELECT version, checksum FROM schema_migrations")}
        superseded = load_superseded(directory)
        for migration in migrations:
            if migration.version in done:
                recorded = done[migration.version]
                if recorded in superseded.get(migration.version, ()):
                    # A comment-only edit (docs/migrations.md): record the file as it reads now.
                    session.execute(
                        "UPDATE schema_migrations SET checksum = :c WHERE version = :v",
                        c=migration.checksum,
                        v=migration.version,
                    )
                elif recorded != migration.checksum:
                    raise RuntimeError(f"migration {migration.version} changed after it was applied")
                continue
            _with_retries(db, migration, limits, sleep)
            applied_now.append(migration.version)
    return applied_now


def _with_retries(db: Database, migration: Migration, limits: Limits, sleep: Callable[[float], None]) -> None:
    for attempt in range(1, limits.attempts + 1):
        try:
            _apply(db, migration, limits)
            return
        except Exception as exc:
            if sqlstate(exc) != LOCK_NOT_AVAILABLE or attempt == limits.attempts:
                raise
            log.warning(
                "migration waited too long for a lock; retrying",
                extra={"version": migration.version, "attempt": attempt, "of": limits.attempts},
            )
            sleep(limits.pause_seconds * attempt)


def _apply(db: Database, migration: Migration, limits: Limits) -> None:
    if migration.transactional:
        with db.transaction() as tx:
            _set_timeouts(tx, limits, local=True)
            tx.script(migration.sql)
            tx.execute(_RECORD, v=migration.version, c=migration.checksum)
            tx.commit()
        return
    with db.dedicated() as conn:
        _set_timeouts(conn, limits, local=False)
        conn.script(migration.sql)
        conn.execute(_RECORD, v=migration.version, c=migration.checksum)


def _set_timeouts(tx: Tx, limits: Limits, *, local: bool) -> None:
    scope = "SET LOCAL" if local else "SET"
    # Integers we hold, never input: formatted because SET takes no parameters.
    tx.script(f"{scope} lock_timeout = {int(limits.lock_timeout_ms)}")
    tx.set_statement_timeout(limits.statement_timeout_ms, local=local)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE Postgres reported for `exc`, if it reported one."""
    info = exc.args[0] if exc.args else None
    return info.get("C") if isinstance(info, dict) else None


def _run(limits: Limits) -> None:
    db = Database(config.load(required=(config.DATABASE,)))
    try:
        applied = migrate(db, limits=limits)
    finally:
        db.close()
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


def main(argv: list[str] | None = None) -> int:
    """Migrate DATABASE_URL, or the `make dev` embedded database when it is unset."""
    defaults = Limits()
    parser = argparse.ArgumentParser(prog="python -m infra.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--lock-timeout-ms", type=int, default=defaults.lock_timeout_ms)
    parser.add_argument("--statement-timeout-ms", type=int, default=defaults.statement_timeout_ms)
    parser.add_argument("--attempts", type=int, default=defaults.attempts)
    args = parser.parse_args(argv)
    limits = Limits(args.lock_timeout_ms, args.statement_timeout_ms, args.attempts)
    if os.environ.get("DATABASE_URL") or os.environ.get("CLOUD_SQL_INSTANCE"):
        _run(limits)
        return 0
    from infra import embedded
    from infra.dev import DATA

    os.environ.setdefault("VALKEY_URL", "redis://unused")  # migrations never touch Valkey
    with embedded.services(DATA, persistent=True) as env:
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
        _run(limits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
