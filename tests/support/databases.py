"""Isolated test databases: clones of one migrated template, reused after a reset.

A test that looks at or changes global state (every online mitra, app_config, the sweeps)
needs a database no other test wrote to. A fresh clone per test (CREATE DATABASE ... TEMPLATE)
costs 70-450 ms on two busy cores, against a few ms for emptying one, so each test process
keeps the clones it made and hands each out again once it is back to the template's state:

1. every other connection to it is ended (as DROP DATABASE ... WITH (FORCE) did);
2. every table is emptied (DELETE, children before parents), the rows the migrations
   inserted (the app_config defaults) are inserted again, and every sequence is set back to
   where the template has it: the database then holds exactly what a fresh clone would.

All in one transaction, checked first against a fingerprint of the schema (tables, columns,
functions, triggers, constraints, types of the non-system schemas): a test that created or
altered schema objects gets no reset; its database is dropped and a new clone replaces it.

The reset runs as a temporary function (pg_temp, invisible to the fingerprint) on one
connection per clone, kept open between tests (application_name RESETTER): with a new backend
and a freshly planned DO block a reset cost Postgres about 34 ms of CPU, on the kept one 8 ms.
It reports its statistics before it answers (pg_stat_force_next_flush), so its own
transactions never land later in a test that counts the database's transactions
(tests/support/server_counters.py, which leaves this connection out when it waits for the
app's backends to exit).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import uuid
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from typing import Any, ClassVar

import pg8000.native

from shared.db import parse_database_url

# Everything a test could add or alter in a schema, as one digest. Clones keep the template's
# object ids, so a clone matches the template until something is created, dropped or altered.
FINGERPRINT = r"""
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'),
rel AS (SELECT oid, relnatts, relkind, relpersistence, relrowsecurity, reloptions FROM pg_class
        WHERE relnamespace IN (SELECT oid FROM ns))
SELECT md5(string_agg(item, ',' ORDER BY item)) FROM (
  SELECT 'ns' || oid FROM ns
  UNION ALL SELECT concat_ws(':', 'rel', oid, relnatts, relkind, relpersistence, relrowsecurity, reloptions) FROM rel
  UNION ALL SELECT concat_ws(':', 'att', attrelid, attnum, atttypid, attnotnull, attisdropped, attgenerated)
            FROM pg_attribute WHERE attrelid IN (SELECT oid FROM rel) AND attnum > 0
  UNION ALL SELECT 'def' || oid FROM pg_attrdef WHERE adrelid IN (SELECT oid FROM rel)
  UNION ALL SELECT 'con' || oid FROM pg_constraint WHERE connamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT concat_ws(':', 'trg', oid, tgenabled) FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM rel)
  UNION ALL SELECT 'pol' || oid FROM pg_policy WHERE polrelid IN (SELECT oid FROM rel)
  UNION ALL SELECT 'proc' || oid FROM pg_proc WHERE pronamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'type' || oid FROM pg_type WHERE typnamespace IN (SELECT oid FROM ns)
  UNION ALL SELECT 'ext' || oid FROM pg_extension
  UNION ALL SELECT 'evt' || oid FROM pg_event_trigger
  UNION ALL SELECT 'set' || array_to_string(setconfig, ',') FROM pg_db_role_setting
            WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
) AS items (item)
"""

SCHEMA_CHANGED = "test database schema changed"
RESETTER = "bestie-test-reset"  # the application_name of the connection that resets a clone


def url_for(url: str, database: str) -> str:
    """`url` pointed at another database of the same server."""
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{database}" + (f"?{query}" if query else "")


def connect(url: str, database: str | None = None, application_name: str | None = None) -> Any:
    """A pg8000 connection to `url`'s server (to `database` instead of the URL's, if given)."""
    p = parse_database_url(url)
    return pg8000.native.Connection(
        p.user,
        host=p.host or "localhost",
        port=p.port,
        database=database or p.database,
        password=p.password,
        unix_sock=p.unix_sock,
        ssl_context=p.ssl_context,
        application_name=application_name,
    )


def reset_script(conn: Any) -> str:
    """The body of a PL/pgSQL block that puts a clone of `conn`'s database back to the state it has now."""
    user_schemas = "schemaname NOT LIKE 'pg\\_%' AND schemaname <> 'information_schema'"
    tables: list[str] = [
        r[0]
        for r in conn.run(
            f"SELECT CAST(format('%I.%I', schemaname, tablename) AS regclass)::text FROM pg_tables WHERE {user_schemas}"  # noqa: S608
            " AND tablename <> 'schema_migrations'"
        )
    ]
    children: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in conn.run(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"
    ):
        if child in children and parent in children and child != parent:
            children[parent].add(child)  # the sorter puts a table after its "predecessors": its children
    try:
        empty = [f"DELETE FROM {t};" for t in TopologicalSorter(children).static_order()]  # noqa: S608
    except CycleError:
        empty = [f"TRUNCATE {', '.join(tables)};"]
    refill = []
    for table in tables:
        rows = conn.run(f"SELECT json_agg(t) FROM {table} AS t")[0][0]  # noqa: S608
        if rows:
            tag = f"$rows_{secrets.token_hex(4)}$"
            refill.append(
                f"INSERT INTO {table} OVERRIDING SYSTEM VALUE"  # noqa: S608
                f" SELECT * FROM json_populate_recordset(NULL::{table}, {tag}{json.dumps(rows)}{tag});"
            )
    sequences = [
        f"PERFORM setval({name}::regclass, {value}, {called});"
        for name, value, called in conn.run(
            "SELECT quote_literal(format('%I.%I', schemaname, sequencename)),"  # noqa: S608
            f" coalesce(last_value, start_value), last_value IS NOT NULL FROM pg_sequences WHERE {user_schemas}"
        )
    ]
    fingerprint = conn.run(FINGERPRINT)[0][0]
    body = [
        f"IF ({FINGERPRINT}) IS DISTINCT FROM '{fingerprint}' THEN RAISE EXCEPTION '{SCHEMA_CHANGED}'; END IF;",
        "PERFORM pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid();",
        *empty,
        *refill,
        *sequences,
        "PERFORM pg_stat_force_next_flush();",
    ]
    return "BEGIN\n" + "\n".join(body) + "\nEND"


class IsolatedDatabases:
    """A migrated template and the clones of it one test process hands out, one per holder."""

    _by_template: ClassVar[dict[str, IsolatedDatabases]] = {}

    def __init__(self, server_url: str, template: str) -> None:
        """`template` is a migrated database on `server_url`'s server; nothing may connect to it after."""
        self.server_url = server_url
        self.template = template
        conn = connect(server_url, template)
        try:
            body = reset_script(conn)
            self._reset = (
                f"CREATE FUNCTION pg_temp.bestie_reset() RETURNS void LANGUAGE plpgsql AS $reset$\n{body}\n$reset$"
            )
        finally:
            conn.close()
        self._free: list[str] = []
        self._made: set[str] = set()
        self._resetters: dict[str, Any] = {}  # clone -> its kept reset connection
        IsolatedDatabases._by_template[template] = self

    @classmethod
    def of(cls, template: str) -> IsolatedDatabases:
        return cls._by_template[template]

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """The DATABASE_URL of a database equal to a fresh clone of the template, for the block."""
        name = self._free.pop() if self._free else self._clone()
        try:
            yield url_for(self.server_url, name)
        finally:
            if self._reset_or_drop(name):
                self._free.append(name)

    def _admin(self) -> Any:
        return connect(self.server_url, "postgres")

    def _clone(self) -> str:
        name = f"iso_{uuid.uuid4().hex[:12]}"
        admin = self._admin()
        try:
            admin.run(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        finally:
            admin.close()
        self._made.add(name)
        return name

    def _resetter(self, name: str) -> Any:
        conn = self._resetters.get(name)
        if conn is None:
            conn = connect(self.server_url, name, application_name=RESETTER)
            try:
                conn.run("SET lock_timeout = '20s'")
                conn.run(self._reset)
            except BaseException:
                conn.close()
                raise
            self._resetters[name] = conn
        return conn

    def _close_resetter(self, name: str) -> None:
        conn = self._resetters.pop(name, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _reset_or_drop(self, name: str) -> bool:
        """Reset `name` in place (True), or drop it when its schema changed (False)."""
        for attempt in (1, 2):  # once more on a new connection: a test may have ended the kept one's backend
            try:
                self._resetter(name).run("SELECT pg_temp.bestie_reset()")
                return True
            except (pg8000.native.DatabaseError, pg8000.native.InterfaceError) as exc:
                self._close_resetter(name)
                if SCHEMA_CHANGED in str(exc):
                    break
                if attempt == 2:
                    raise
        self._drop(name)
        return False

    def _drop(self, name: str) -> None:
        self._close_resetter(name)
        admin = self._admin()
        try:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            admin.close()
        self._made.discard(name)
        with contextlib.suppress(ValueError):
            self._free.remove(name)

    def close(self) -> None:
        """Drop every clone and the template (they would outlive the run on a server of one's own)."""
        for name in sorted(self._made):
            self._drop(name)
        admin = self._admin()
        try:
            admin.run(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
        finally:
            admin.close()
        IsolatedDatabases._by_template.pop(self.template, None)
