"""Operational events: the log lines an operator acts on, each with a stable name and typed fields.

Every signal that an alert, a dashboard or a runbook relies on is logged through `emit`, which
writes one JSON line with `event` set to a name from CATALOG and the catalog's fields. The names
and fields are a contract with infra/monitoring/ (log-based metrics filter on
`jsonPayload.event`), so they change only together: tests/tooling/test_oplog_catalog.py proves
that every `emit` in the code names a catalogued event with exactly its fields, and that every
catalogued event is emitted somewhere. docs/operations.md explains each one.

Free-text messages stay free to change; `event` and the fields do not.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

_log = logging.getLogger("bestie.ops")


class Event(NamedTuple):
    """One catalogued event: its severity, its fields and their types, and what it means."""

    severity: int
    fields: dict[str, type]
    meaning: str


CATALOG: dict[str, Event] = {
    "sweep.finished": Event(
        logging.INFO,
        {"sweep": str, "passes": int, "seconds": float},
        "A sweep invocation completed; its absence for 3x the cadence is an alert.",
    ),
    "sweep.aborted": Event(
        logging.ERROR,
        {"sweep": str, "reason": str},
        "A sweep pass gave up before touching Postgres (valkey_error, mirror_not_seeded).",
    ),
    "sweep.failed": Event(
        logging.ERROR,
        {"sweep": str, "error": str},
        "A sweep invocation raised; the Scheduler retry may take it over.",
    ),
    "sweep.breaker_tripped": Event(
        logging.ERROR,
        {"stale": int, "online": int},
        "Auto-offline found so many stale heartbeats at once that it offlined nobody.",
    ),
    "mirror.drift_healed": Event(
        logging.WARNING,
        {"drift": int, "mitras": int},
        "The reseed found the mirror different from Postgres and rewrote it.",
    ),
    "mirror.repaired": Event(
        logging.INFO,
        {"sessions": int, "mitras": int, "pings": int},
        "An instance rewrote the mirror's access marks from Postgres and trusts it again.",
    ),
    "mirror.repair_failed": Event(
        logging.WARNING,
        {"reason": str, "error": str},
        "An instance could not repair the mirror (valkey_error: it answers from Postgres;"
        " postgres_down: the mirror answers unverified); it tries again on its next call.",
    ),
    "db.pool_exhausted": Event(
        logging.ERROR,
        {"pool_size": int, "wait_seconds": float},
        "A request waited the whole pool timeout for a Postgres connection and got 503.",
    ),
    "push.sent": Event(
        logging.INFO,
        {"push_type": str, "count": int},
        "FCM accepted pushes of one kind for this many devices.",
    ),
    "push.failed": Event(
        logging.WARNING,
        {"push_type": str, "error": str, "count": int},
        "FCM refused or could not take pushes (error: the FCM code, or `exception`).",
    ),
    "push.dropped": Event(
        logging.WARNING,
        {"reason": str, "count": int},
        "Pushes never sent: the queue was full, or the instance shut down with pushes queued.",
    ),
    "push.expired": Event(
        logging.INFO,
        {"push_type": str, "count": int},
        "Pushes whose expiry (an offer's deadline) passed while they were queued.",
    ),
    "push.tokens_deleted": Event(
        logging.INFO,
        {"count": int},
        "Device tokens FCM reported dead (unregistered, another project's, malformed), deleted.",
    ),
    "sms.sent": Event(
        logging.INFO,
        {"provider": str, "country": str},
        "An OTP SMS was handed to the provider (the country is the number's region code).",
    ),
    "sms.failed": Event(
        logging.WARNING,
        {"provider": str, "reason": str},
        "The SMS provider could not be reached or refused the message.",
    ),
    "payments.failed": Event(
        logging.WARNING,
        {"provider": str, "reason": str},
        "The payment gateway could not be reached or refused a create or status request.",
    ),
}


def emit(name: str, **fields: Any) -> None:
    """Log the catalogued event `name` with its fields, at the catalog's severity."""
    event = CATALOG[name]
    _log.log(event.severity, name, extra={"event": name, **fields})
