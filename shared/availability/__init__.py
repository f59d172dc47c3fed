"""Mitra availability: the Valkey mirror (docs/availability.md) and its Postgres fallbacks.

The stable public API used by the status, pairing, sweep and control-center functions.
Design and protocols: docs/availability.md.

Seeding
    seed_from_postgres(ctx) -> SeedReport        full rebuild under the seed lock (the reseed sweep)
    ensure_seeded(ctx) -> bool                   seed if `seeded` is missing and the lock is free
Writes (Postgres first, mirror best-effort; each returns the new state)
    set_online / set_offline(ctx, mitra_id, actor)
    deactivate / activate(ctx, mitra_id, actor)  deactivate also revokes every auth session
    create_mitra, edit_mitra                     control center
    recompute_capacity(ctx, mitra_id)            after every chat-session transition
    sync_mitras(ctx, ids)                        re-mirror several mitras from Postgres
    set_app_config(ctx, key, value, actor)       mirrors mitra_max_concurrent_sessions
    heartbeat(ctx, principal)                    one Valkey round trip, zero Postgres statements
Reads (mirror first, Postgres fallback with the same answer)
    is_mitra_reachable(ctx, mitra_id) -> bool
    find_available_mitras(ctx, limit, exclude) -> list[str]   fair: rotating cursor
    count_available(ctx) -> {available, as_of, source}        the shared 10 s snapshot
    dashboard_counts(ctx) -> {online, available, deactivated, source}
    mitra_status(ctx, mitra_id), list_mitras(ctx, limit, cursor, search=, status=),
    mitra_with_live(ctx, mitra_id)
For the sweeps (raise on any Valkey error, so a sweep can abort)
    stale_scan(ctx, cutoff_ms, limit) -> StaleScan | None     short scripts: seeded?, SCARD online, stale pings as CSV
    ping_chunks(ctx, since_ms) -> Iterator[Pings]             ZRANGEBYSCORE heartbeat (since, +inf], per chunk, as CSV
    heartbeat_watermark / set_heartbeat_watermark(ctx, ms)    the heartbeat-mirror sweep's progress
    remove_offlined(ctx, ids_csv) -> int                      a script per chunk: online, heartbeat, available
    is_seeded(ctx) -> bool
"""

from shared.availability.api import (
    activate,
    count_available,
    create_mitra,
    dashboard,
    dashboard_counts,
    deactivate,
    edit_mitra,
    ensure_seeded,
    find_available_mitras,
    heartbeat,
    is_mitra_reachable,
    list_mitras,
    mitra_status,
    mitra_with_live,
    recompute_capacity,
    seed_from_postgres,
    set_app_config,
    set_offline,
    set_online,
    sync_mitras,
)
from shared.availability.mirror import (
    StaleScan,
    cutoff_ms,
    heartbeat_watermark,
    is_seeded,
    ping_chunks,
    remove_offlined,
    set_heartbeat_watermark,
    stale_scan,
)
from shared.availability.seed import SeedReport

__all__ = [
    "SeedReport",
    "StaleScan",
    "activate",
    "count_available",
    "create_mitra",
    "cutoff_ms",
    "dashboard",
    "dashboard_counts",
    "deactivate",
    "edit_mitra",
    "ensure_seeded",
    "find_available_mitras",
    "heartbeat",
    "heartbeat_watermark",
    "is_mitra_reachable",
    "is_seeded",
    "list_mitras",
    "mitra_status",
    "mitra_with_live",
    "ping_chunks",
    "recompute_capacity",
    "remove_offlined",
    "seed_from_postgres",
    "set_app_config",
    "set_heartbeat_watermark",
    "set_offline",
    "set_online",
    "stale_scan",
    "sync_mitras",
]
