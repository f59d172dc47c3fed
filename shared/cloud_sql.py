"""Postgres connections through the Cloud SQL Python Connector (pg8000 driver, lazy refresh,
optional IAM auth), as in Google's own function samples
(https://cloud.google.com/sql/docs/postgres/connect-connectors#python).

`shared.db` uses it when CLOUD_SQL_INSTANCE is set; the connector and pg8000 are imported on
the first connection, not at import. Any failure to connect is an OSError, which the pool
turns into a 503.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.errors import ConfigError

if TYPE_CHECKING:
    from pg8000.core import CoreConnection


def connector(settings: Settings) -> Callable[[], CoreConnection]:
    """Connect through the Cloud SQL Python Connector (imported on the first connection)."""
    instance = settings.cloud_sql_instance
    if not instance or not settings.db_user or not settings.db_name:
        raise ConfigError("CLOUD_SQL_INSTANCE needs DB_USER and DB_NAME")
    lock = threading.Lock()
    connectors: list[Any] = []

    def connect() -> CoreConnection:
        # Built on first use, not at import: it looks up credentials, and a failure here must
        # be a 503 for this request rather than a crashed cold start.
        from google.cloud.sql.connector import Connector, IPTypes
        from pg8000 import exceptions as pg8000_errors

        try:
            with lock:
                if not connectors:
                    connectors.append(Connector(refresh_strategy="LAZY"))
            conn: CoreConnection = connectors[0].connect(
                instance,
                "pg8000",
                user=settings.db_user,
                db=settings.db_name,
                password=settings.db_password,
                enable_iam_auth=settings.db_iam_auth,
                ip_type=IPTypes.PRIVATE,
            )
        except (pg8000_errors.InterfaceError, OSError):
            raise
        except Exception as exc:  # credentials, IAM, the Cloud SQL Admin API: all "cannot connect"
            raise CloudSqlConnectError(f"{type(exc).__name__}: {exc}") from exc
        return conn

    return connect


class CloudSqlConnectError(OSError):
    """The Cloud SQL Python Connector could not open a connection (mapped to a 503)."""
