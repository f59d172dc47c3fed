"""What several benchmarks share: a median timer, and a context on embedded servers of its own."""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from infra import embedded, migrate
from shared.config import Settings
from shared.context import AppContext
from shared.db import Database, parse_database_url


def median_ms(fn: Callable[[], Any], repeat: int, before: Callable[[], Any] | None = None) -> float:
    """Median wall time of `repeat` calls of `fn` in ms (`before` runs untimed before each)."""
    times = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@contextmanager
def own_servers(prefix: str) -> Iterator[AppContext]:
    """A migrated context on an embedded Postgres and Valkey of its own, stopped and removed after
    (benchmarks that truncate tables never touch a shared server)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    pg = embedded.EmbeddedPostgres(root / "postgres").start()
    vk = embedded.EmbeddedValkey(root / "valkey").start()
    try:
        settings = dataclasses.replace(
            Settings.from_env(),
            database_url=pg.url,
            valkey_url=vk.url,
            valkey_prefix="bench:",
            valkey_timeout_seconds=30.0,
            db_statement_timeout_ms=BULK_SOCKET_TIMEOUT_SECONDS * 1000,
        )
        ctx = AppContext(settings)
        ctx.db = patient_database(settings)  # type: ignore[misc]
        migrate.migrate(ctx.db)
        try:
            yield ctx
        finally:
            ctx.close()
    finally:
        vk.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


BULK_SOCKET_TIMEOUT_SECONDS = 300


def patient_database(settings: Settings) -> Database:
    """A pool on `settings`' database whose statements and socket wait BULK_SOCKET_TIMEOUT_SECONDS."""
    assert settings.database_url
    patient = dataclasses.replace(settings, db_statement_timeout_ms=BULK_SOCKET_TIMEOUT_SECONDS * 1000)
    return Database(patient, connect=patient_connect(settings.database_url))


def patient_connect(url: str) -> Callable[[], Any]:
    """Connections whose socket (and statement timeout) wait BULK_SOCKET_TIMEOUT_SECONDS for a
    reply, not the deployed 10 s (15 s): at a million mitras the bulk setup's statements and the reseed's snapshot
    query (which answers only once it has aggregated every row) run longer than that on this
    shared machine, and the bench measures them rather than the timeout."""
    import pg8000.native

    params = parse_database_url(url)

    def connect() -> Any:
        conn = pg8000.native.Connection(
            params.user,
            password=params.password,
            database=params.database,
            host=params.host or "localhost",
            port=params.port,
            ssl_context=params.ssl_context,
            timeout=BULK_SOCKET_TIMEOUT_SECONDS,
            application_name=params.application_name,
        )
        return conn

    return connect


@dataclasses.dataclass(frozen=True)
class ActiveSession:
    """An active chat session of a new customer and a new mitra, with both parties' credentials."""

    session: str
    customer: dict[str, str]  # Authorization header
    mitra: dict[str, str]  # Authorization header
    mitra_principal: Any


def active_sessions(ctx: AppContext, n: int) -> list[ActiveSession]:
    """n active, paid sessions of an hour, written straight to Postgres, with access tokens."""
    from shared.auth.principal import Principal
    from shared.auth.tokens import create_session, encode_access

    now = ctx.now()
    out = []
    with ctx.db.transaction() as tx:
        for _ in range(n):
            customer = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('bench') RETURNING id"))
            mitra = str(
                tx.scalar(
                    "INSERT INTO mitras (phone_e164, display_name) VALUES (:p, 'bench') RETURNING id",
                    p=f"+62819{uuid.uuid4().int % 10**8:08d}",
                )
            )
            session = str(
                tx.scalar(
                    "INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes, paid_at,"
                    " started_at, expires_at) VALUES (CAST(:c AS uuid), CAST(:m AS uuid), 'active', 60, :now,"
                    " :now, :end) RETURNING id",
                    c=customer,
                    m=mitra,
                    now=now,
                    end=now + timedelta(hours=1),
                )
            )
            principals = [
                Principal(kind, user, create_session(tx, ctx.settings, kind, user, now))
                for kind, user in (("customer", customer), ("mitra", mitra))
            ]
            customer_auth, mitra_auth = (
                {"Authorization": f"Bearer {encode_access(ctx.settings, p, now)}"} for p in principals
            )
            out.append(ActiveSession(session, customer_auth, mitra_auth, principals[1]))
        tx.commit()
    return out
