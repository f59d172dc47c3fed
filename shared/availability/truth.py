"""What Postgres says about availability: the truth the mirror is derived from, and the
fallback queries that answer every mirror read when Valkey is down or not seeded.

Read-model SQL over `mitras`, `mitra_pings`, `chat_sessions`, `pairing_offers`, `app_config` and
`auth_sessions`; nothing here writes. Each fallback answers the same question as its
Valkey read: fresh = last ping (the later of mitras.last_heartbeat_at and mitra_pings.at)
> now - MITRA_HEARTBEAT_STALE_SECONDS,
available = online and active and used < max (override, else the app_config default).

The available/capacity rule is written here once for Python (`effective_max`, `is_available`)
and once for SQL (`effective_max_sql`, `available_sql`, used by these queries and by the
accept's capacity check in shared.pairing.store); its one Lua copy is `_available_rule.lua`.
tests/integration/test_available_rule_agrees.py checks the three agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from shared.db import Tx

# The default maximum when app_config has no mitra_max_concurrent_sessions row (Lua: '1').
UNSET_DEFAULT_MAX = 1
# The statuses in which a session holds its mitra's capacity: used = how many it holds. The one
# definition; the state machine (shared.sessions.states) and every capacity query take it from here.
CAPACITY_STATUSES = ("pending_payment", "active")


def holds_capacity_sql(status: str) -> str:
    """SQL that a session's `status` column is one of CAPACITY_STATUSES (constant SQL)."""
    return f"{status} IN ({', '.join(repr(s) for s in CAPACITY_STATUSES)})"


# Used capacity of mitra m, derived from chat_sessions (never bookkept).
_USED = f"(SELECT count(*) FROM chat_sessions s WHERE s.mitra_id = m.id AND {holds_capacity_sql('s.status')})"  # noqa: S608
DEFAULT_MAX_SQL = (
    "COALESCE((SELECT (value #>> '{}')::int FROM app_config WHERE key = 'mitra_max_concurrent_sessions'),"  # noqa: S608 (constant SQL)
    f" {UNSET_DEFAULT_MAX})"
)


# The rule in SQL. Arguments are SQL expressions written in this package or its callers
# (column names, casts of bind parameters), never input.
def effective_max_sql(override: str, default_max: str = DEFAULT_MAX_SQL) -> str:
    """SQL for a mitra's maximum: its own override, else the app_config default."""
    return f"COALESCE({override}, {default_max})"


def under_capacity_sql(used: str, override: str, default_max: str = DEFAULT_MAX_SQL) -> str:
    """SQL for the capacity half of the rule: used below the effective maximum (the accept's check)."""
    return f"{used} < {effective_max_sql(override, default_max)}"


def available_sql(online: str, active: str, used: str, override: str, default_max: str = DEFAULT_MAX_SQL) -> str:
    """SQL for the available rule (heartbeat freshness aside): online, active and under capacity."""
    return f"({online} AND {active} AND {under_capacity_sql(used, override, default_max)})"


# A mitra's last ping: the later of the one written with its row (going online, auto-offline,
# the Postgres heartbeat fallback) and the one the heartbeat-mirror sweep keeps in mitra_pings.
_LAST_PING = "GREATEST(m.last_heartbeat_at, (SELECT p.at FROM mitra_pings p WHERE p.mitra_id = m.id))"
_REACHABLE = f"m.is_online AND m.is_active AND {_LAST_PING} > :cutoff"
_AVAILABLE = f"{_LAST_PING} > :cutoff AND " + available_sql(
    "m.is_online", "m.is_active", _USED, "m.max_concurrent_sessions"
)


class MitraTruth(NamedTuple):
    """One mitra's availability facts as Postgres has them."""

    id: str
    online: bool
    active: bool
    used: int
    max_override: int | None
    last_heartbeat_at: datetime | None

    @property
    def heartbeat_ms(self) -> int:
        return to_ms(self.last_heartbeat_at) if self.last_heartbeat_at else 0


def effective_max(max_override: int | None, default_max: int) -> int:
    """A mitra's maximum concurrent sessions: its own override (0 included), else the default."""
    return max_override if max_override is not None else default_max


def is_available(online: bool, active: bool, used: int, max_override: int | None, default_max: int) -> bool:
    """The available rule (heartbeat freshness aside, a read-time filter): online, not
    deactivated, and under capacity, the mitra's own maximum or else the default."""
    return online and active and used < effective_max(max_override, default_max)


def to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _truth(row: dict[str, Any]) -> MitraTruth:
    return MitraTruth(
        id=str(row["id"]),
        online=bool(row["is_online"]),
        active=bool(row["is_active"]),
        used=int(row["used"]),
        max_override=row["max_concurrent_sessions"],
        last_heartbeat_at=row["last_heartbeat_at"],
    )


_COLUMNS = (
    "m.id, m.is_online, m.is_active, m.max_concurrent_sessions,"
    " GREATEST(m.last_heartbeat_at, p.at) AS last_heartbeat_at"
)
_WITH_PINGS = "mitras m LEFT JOIN mitra_pings p ON p.mitra_id = m.id"


def mitras_by_id(tx: Tx, ids: list[str]) -> list[MitraTruth]:
    """The truth of the given mitras (unknown ids are simply absent)."""
    rows = tx.rows(
        f"SELECT {_COLUMNS}, {_USED} AS used FROM {_WITH_PINGS} WHERE m.id = ANY(CAST(:ids AS uuid[]))",  # noqa: S608 (constant SQL)
        ids=ids,
    )
    return [_truth(r) for r in rows]


_MIRRORED_SQL = (
    "WITH u AS (SELECT mitra_id, count(*) AS n FROM chat_sessions"  # noqa: S608 (constant SQL)
    f"           WHERE {holds_capacity_sql('status')} AND mitra_id IS NOT NULL GROUP BY mitra_id)"
    f" SELECT {_COLUMNS}, COALESCE(u.n, 0) AS used FROM {_WITH_PINGS} LEFT JOIN u ON u.mitra_id = m.id"
    " WHERE m.is_online OR NOT m.is_active OR m.max_concurrent_sessions IS NOT NULL OR u.n IS NOT NULL"
)


def mirrored_mitras(tx: Tx) -> list[MitraTruth]:
    """Every mitra that leaves a trace in the mirror (online, deactivated, override or used > 0)."""
    return [_truth(r) for r in tx.rows(_MIRRORED_SQL)]


@dataclass(frozen=True)
class SeedSlice:
    """Up to `size` consecutive mitras of the seed's snapshot, per mirror structure: members and
    values as comma-separated strings. The heartbeat, available and ring members are among the
    online ones: their pings are aligned with `online_ids`, and `available_flags` holds one
    '1' or '0' per online mitra."""

    mitras: int
    online: int
    online_ids: str
    online_ms: str
    available: int
    available_flags: str
    deactivated: int
    deactivated_ids: str
    used: int
    used_ids: str
    used_vals: str
    max: int
    max_ids: str
    max_vals: str


# One page of the seed's snapshot: the next `:size` mitras by id after `:after` (a keyset page:
# one primary-key range scan however deep), those of them that leave a trace in the mirror
# aggregated by Postgres into comma-separated strings, so the client neither parses rows nor
# encodes an argument per member. Used capacity comes from the capacity-holding sessions of
# the page's id range only (an index range scan), so every page costs the same and each
# statement stays far inside statement_timeout at any size. All aggregates of the one result
# row read the rows in the same order, so the online ids, their pings and their flags line up.
# Scores are epoch ms (floor). `last_id` is the page's last mitra (NULL past the end).
_SEED_PAGE_SQL = (
    "WITH page AS (SELECT id, is_online, is_active, max_concurrent_sessions, last_heartbeat_at"  # noqa: S608 (constant SQL)
    "              FROM mitras WHERE id > CAST(:after AS uuid) ORDER BY id LIMIT :size),"
    " b AS (SELECT (SELECT id FROM page ORDER BY id LIMIT 1) AS lo,"
    "       (SELECT id FROM page ORDER BY id DESC LIMIT 1) AS hi),"
    " u AS (SELECT s.mitra_id, count(*) AS n FROM chat_sessions s, b"
    f"      WHERE s.mitra_id BETWEEN b.lo AND b.hi AND {holds_capacity_sql('s.status')} GROUP BY s.mitra_id),"
    f" d AS (SELECT {DEFAULT_MAX_SQL} AS dmax)"
    " SELECT (SELECT hi::text FROM b) AS last_id, count(*) AS mitras,"
    "  count(*) FILTER (WHERE online) AS online,"
    "  COALESCE(string_agg(id, ',') FILTER (WHERE online), '') AS online_ids,"
    "  COALESCE(string_agg(ms::text, ',') FILTER (WHERE online), '') AS online_ms,"
    "  count(*) FILTER (WHERE online AND avail) AS available,"
    "  COALESCE(string_agg(CASE WHEN avail THEN '1' ELSE '0' END, '') FILTER (WHERE online), '') AS available_flags,"
    "  count(*) FILTER (WHERE NOT active) AS deactivated,"
    "  COALESCE(string_agg(id, ',') FILTER (WHERE NOT active), '') AS deactivated_ids,"
    "  count(*) FILTER (WHERE used > 0) AS used,"
    "  COALESCE(string_agg(id, ',') FILTER (WHERE used > 0), '') AS used_ids,"
    "  COALESCE(string_agg(used::text, ',') FILTER (WHERE used > 0), '') AS used_vals,"
    "  count(*) FILTER (WHERE mx IS NOT NULL) AS max,"
    "  COALESCE(string_agg(id, ',') FILTER (WHERE mx IS NOT NULL), '') AS max_ids,"
    "  COALESCE(string_agg(mx::text, ',') FILTER (WHERE mx IS NOT NULL), '') AS max_vals"
    f" FROM (SELECT s.*, {available_sql('s.online', 's.active', 's.used', 's.mx', 'd.dmax')} AS avail"
    "       FROM (SELECT m.id::text AS id, m.is_online AS online, m.is_active AS active,"
    "             COALESCE(u.n, 0) AS used, m.max_concurrent_sessions AS mx,"
    "             COALESCE(floor(extract(epoch FROM GREATEST(m.last_heartbeat_at,"
    "               (SELECT p.at FROM mitra_pings p WHERE p.mitra_id = m.id))) * 1000), 0)::bigint AS ms"
    "             FROM page m LEFT JOIN u ON u.mitra_id = m.id"
    "             WHERE m.is_online OR NOT m.is_active OR m.max_concurrent_sessions IS NOT NULL"
    "                OR u.n IS NOT NULL) s, d) t"
)
_BEFORE_EVERY_ID = "00000000-0000-0000-0000-000000000000"  # gen_random_uuid() never returns it


@dataclass(frozen=True)
class SeedPage(SeedSlice):
    """A slice and the last mitra id of its page (None past the last page)."""

    last_id: str | None = None


def seed_pages(tx: Tx, size: int) -> Iterator[SeedSlice]:
    """What mirrored_mitras holds, one keyset page of at most `size` mitras per statement (a
    page may hold no mirrored mitra), so a caller can write each page while the next is read.
    Run it inside one REPEATABLE READ transaction: every page then reads the same snapshot."""
    # A page is small but the planner prices it by the whole table and would JIT-compile every
    # page (half a second each at a million mitras).
    tx.script("SET LOCAL jit = off")
    after = _BEFORE_EVERY_ID
    while True:
        row = tx.one(_SEED_PAGE_SQL, after=after, size=size)
        assert row is not None  # an aggregate without GROUP BY answers one row
        page = SeedPage(**row)
        if page.last_id is None:
            return
        yield page
        after = page.last_id


def seed_slices(tx: Tx, size: int) -> list[SeedSlice]:
    """What mirrored_mitras holds, in slices of at most `size` mitras."""
    return list(seed_pages(tx, size))


def default_max(tx: Tx) -> int:
    """app_config mitra_max_concurrent_sessions (1 when the row is missing)."""
    return int(tx.scalar(f"SELECT {DEFAULT_MAX_SQL}"))


def recent_revocations(tx: Tx, since: datetime) -> list[tuple[str, datetime]]:
    """Sessions revoked at or after `since` (their access tokens may still be unexpired)."""
    rows = tx.rows("SELECT id, revoked_at FROM auth_sessions WHERE revoked_at >= :since", since=since)
    return [(str(r["id"]), r["revoked_at"]) for r in rows]


def pings_after(tx: Tx, since_ms: int) -> list[tuple[str, int]]:
    """(id, ms) of online, active mitras whose `mitras.last_heartbeat_at` is after `since_ms`.

    That column holds the pings of going online and of the heartbeat's Postgres fallback (the
    heartbeat-mirror sweep writes `mitra_pings`), so after the sweep's watermark it is what
    the mirror may lack. A scan of mitras: run by an access repair only.
    """
    rows = tx.rows(
        "SELECT id::text AS id, (extract(epoch FROM last_heartbeat_at) * 1000)::bigint AS ms FROM mitras"
        " WHERE is_online AND is_active AND last_heartbeat_at > to_timestamp(CAST(:since AS bigint) / 1000.0)",
        since=since_ms,
    )
    return [(r["id"], int(r["ms"])) for r in rows]


# ---- fallback reads ------------------------------------------------------------------------


def count_available(tx: Tx, cutoff: datetime) -> int:
    """Number of fresh available mitras."""
    return int(tx.scalar(f"SELECT count(*) FROM mitras m WHERE {_AVAILABLE}", cutoff=cutoff))  # noqa: S608


def find_available(tx: Tx, cutoff: datetime, limit: int, exclude: list[str]) -> list[str]:
    """Up to `limit` fresh available mitras, least recently offered first (never offered first)."""
    rows = tx.rows(
        f"SELECT m.id FROM mitras m WHERE {_AVAILABLE}"  # noqa: S608 (constant SQL)
        " AND NOT (m.id = ANY(CAST(:exclude AS uuid[])))"
        " ORDER BY (SELECT max(p.offered_at) FROM pairing_offers p WHERE p.mitra_id = m.id) ASC NULLS FIRST, m.id"
        " LIMIT :limit",
        cutoff=cutoff,
        exclude=exclude,
        limit=limit,
    )
    return [str(r["id"]) for r in rows]


def is_reachable(tx: Tx, mitra_id: str, cutoff: datetime) -> bool:
    """Online, active and with a fresh heartbeat."""
    return bool(
        tx.scalar(
            f"SELECT EXISTS (SELECT 1 FROM mitras m WHERE m.id = CAST(:id AS uuid) AND {_REACHABLE})",  # noqa: S608
            id=mitra_id,
            cutoff=cutoff,
        )
    )


def dashboard_counts(tx: Tx, cutoff: datetime) -> dict[str, int]:
    """online, available and deactivated counts in one scan."""
    row = tx.one(
        "SELECT count(*) FILTER (WHERE m.is_online) AS online,"  # noqa: S608 (constant SQL)
        f" count(*) FILTER (WHERE {_AVAILABLE}) AS available,"
        " count(*) FILTER (WHERE NOT m.is_active) AS deactivated FROM mitras m",
        cutoff=cutoff,
    )
    assert row is not None
    return {k: int(row[k]) for k in ("online", "available", "deactivated")}


def status_of(tx: Tx, mitra_id: str) -> MitraTruth | None:
    """One mitra's truth (for its own status screen)."""
    found = mitras_by_id(tx, [mitra_id])
    return found[0] if found else None


def cutoff_for(now: datetime, stale_seconds: int) -> datetime:
    return now - timedelta(seconds=stale_seconds)


def session_counts(tx: Tx, start: datetime | None = None, end: datetime | None = None) -> dict[str, int]:
    """chat_sessions per status (every status present, zero included), requested within `[start, end)` if given."""
    counts = dict.fromkeys(("searching", "pending_payment", "active", "ended", "expired", "cancelled"), 0)
    for row in tx.rows(
        "SELECT status, count(*) AS n FROM chat_sessions"
        " WHERE (CAST(:start AS timestamptz) IS NULL OR requested_at >= :start)"
        " AND (CAST(:end AS timestamptz) IS NULL OR requested_at < :end)"
        " GROUP BY status",
        start=start,
        end=end,
    ):
        counts[row["status"]] = int(row["n"])
    return counts
