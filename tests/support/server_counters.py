"""Counters read on the servers themselves: Postgres transactions and Valkey round trips.

Postgres: pg_stat_database xact_commit + xact_rollback of the test database, read from a
connection to another database. Backends flush their statistics when they exit, so
`settle()` closes the app's pooled connections and waits until the database has no backend
but the one that resets it between tests (tests/support/databases.py, which flushes its own
before each reset answers).
Valkey: INFO stats total_reads_processed counts request reads, i.e. round trips (a pipeline
or a script is one); the counter's own INFO call is subtracted.
"""

from __future__ import annotations

import time
from typing import Any

from shared.context import AppContext
from shared.db import parse_database_url
from tests.support.databases import RESETTER, connect


class PostgresCounter:
    def __init__(self, ctx: AppContext) -> None:
        assert ctx.settings.database_url
        self.ctx = ctx
        self.database = parse_database_url(ctx.settings.database_url).database
        self.conn = connect(ctx.settings.database_url, "postgres")

    def _row(self) -> tuple[int, int]:
        self.conn.run("SELECT pg_stat_clear_snapshot()")
        rows: Any = self.conn.run(
            "SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d),"
            " (SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND application_name <> :r)",
            d=self.database,
            r=RESETTER,
        )
        return int(rows[0][0]), int(rows[0][1])

    def settle(self) -> int:
        """Close the app's connections, wait until their stats are flushed; return the transaction count."""
        self.ctx.db.close_idle()
        deadline = time.monotonic() + 10
        while True:
            xacts, backends = self._row()
            if backends == 0:
                return xacts
            assert time.monotonic() < deadline, "the app's backends did not exit, so their stats are not flushed"
            time.sleep(0.05)

    def close(self) -> None:
        self.conn.close()


class ValkeyCounter:
    def __init__(self, client: Any) -> None:
        self.client = client

    def reads(self) -> int:
        """Round trips so far, excluding this call's own INFO."""
        return int(self.client.info("stats")["total_reads_processed"])

    def evalsha_calls(self) -> int:
        stats = self.client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
