"""Availability services: every write is Postgres first, then the mirror (best-effort);
every read is the mirror first, then the Postgres fallback that gives the same answer.

A read that finds the mirror not `seeded` (fresh Valkey, restart, FLUSHALL) answers from
Postgres and asks `ensure_seeded`, which lets exactly one instance (the seed lock holder)
rebuild the mirror while the others keep using Postgres.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from shared import app_config, audit, feed, mitras
from shared.auth import revocation, tokens
from shared.auth.principal import Principal
from shared.availability import access, mirror, seed, truth
from shared.availability.seed import SeedReport
from shared.availability.truth import MitraTruth
from shared.context import AppContext
from shared.db import DatabaseUnavailable, Tx
from shared.errors import Forbidden, Unauthorized
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_FIND_LIMIT = 500
_SEED_ERRORS: tuple[type[BaseException], ...] = (*VALKEY_ERRORS, DatabaseUnavailable)


def _cutoff(ctx: AppContext) -> datetime:
    return truth.cutoff_for(ctx.now(), ctx.settings.mitra_heartbeat_stale_seconds)


def _fallback(what: str, exc: BaseException | None) -> None:
    if exc is not None:
        log.warning("mirror unavailable; answering from Postgres", extra={"read": what, "error": type(exc).__name__})


def _mirror_or_postgres(
    ctx: AppContext, what: str, from_mirror: Callable[[], T | None], from_postgres: Callable[[Tx], T]
) -> tuple[T, str]:
    """The read fallback policy, once: (answer, source).

    The mirror's answer when it has one (None means not seeded). Otherwise Postgres answers,
    in a read transaction of its own; a mirror that was merely not seeded (rather than
    failing) is asked to seed first, so the next read finds it.
    """
    error: BaseException | None = None
    try:
        found = from_mirror()
        if found is not None:
            return found, "mirror"
    except VALKEY_ERRORS as exc:
        error = exc
    _fallback(what, error)
    if error is None:
        ensure_seeded(ctx)
    with ctx.db.transaction() as tx:
        return from_postgres(tx), "postgres"


# ---- seeding --------------------------------------------------------------------------------


def seed_from_postgres(ctx: AppContext) -> SeedReport:
    """Rebuild the whole mirror from Postgres (under the seed lock); raises on store errors."""
    return seed.seed_from_postgres(ctx)


def ensure_seeded(ctx: AppContext) -> bool:
    """True when the mirror is trustworthy now (already seeded, or seeded by this call)."""
    try:
        if mirror.is_seeded(ctx):
            return True
        return seed.seed_from_postgres(ctx).ran
    except _SEED_ERRORS as exc:
        log.warning("mirror seed not possible now", extra={"error": type(exc).__name__})
        return False


# ---- write paths (Postgres first, then the mirror) -------------------------------------------


def _status_json(row: MitraTruth, default_max: int) -> dict[str, Any]:
    return {
        "online": row.online,
        "used": row.used,
        "max": truth.effective_max(row.max_override, default_max),
        "last_heartbeat_at": row.last_heartbeat_at.isoformat() if row.last_heartbeat_at else None,
    }


def _truth_in_tx(tx: Tx, mitra_id: str) -> tuple[MitraTruth, int]:
    row = truth.mitras_by_id(tx, [mitra_id])[0]
    return row, truth.default_max(tx)


def set_online(ctx: AppContext, mitra_id: str, actor: str) -> dict[str, Any]:
    """Go online (a ping too): 403 ACCOUNT_INACTIVE for a deactivated mitra."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = mitras.require(tx, mitra_id, for_update=True)
        if not row["is_active"]:
            raise Forbidden("this mitra account is deactivated", code="ACCOUNT_INACTIVE")
        mitras.update(tx, mitra_id, now, is_online=True, last_heartbeat_at=now)
        if not row["is_online"]:
            mitras.log_status(tx, mitra_id, "online", actor, now)
        state, default = _truth_in_tx(tx, mitra_id)
        tx.commit()
    mirror.sync(ctx, state, heartbeat_ms=truth.to_ms(now))
    return _status_json(state, default)


def set_offline(ctx: AppContext, mitra_id: str, actor: str) -> dict[str, Any]:
    """Go offline (idempotent; one log row per actual change)."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = mitras.require(tx, mitra_id, for_update=True)
        if row["is_online"]:
            mitras.update(tx, mitra_id, now, is_online=False)
            mitras.log_status(tx, mitra_id, "offline", actor, now)
        state, default = _truth_in_tx(tx, mitra_id)
        tx.commit()
    mirror.sync(ctx, state)
    return _status_json(state, default)


def deactivate(
    ctx: AppContext, mitra_id: str, actor: str, also: Callable[[Tx, datetime], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Deactivate: inactive and offline, log, revoke every auth session; then the mirror.

    `also(tx, now)` runs in the same transaction, under the mitra's row lock, before the audit
    row (the services above end the mitra's sessions there); what it returns is added to the
    audit detail and the answer.
    """
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = mitras.require(tx, mitra_id, for_update=True)
        if row["is_active"]:
            was_online = bool(row["is_online"])
            row = mitras.update(tx, mitra_id, now, is_active=False, is_online=False)
            mitras.log_status(tx, mitra_id, "deactivated", actor, now, {"was_online": was_online})
            feed.add(tx, "mitra", mitra_id, feed.ACCOUNT, now, status="deactivated")  # docs/events.md
        revoked = revocation.take_access_away(ctx, tx, reason="deactivated", user_type="mitra", user_id=mitra_id)
        extra = also(tx, now) if also is not None else {}
        audit.record(tx, actor, "mitra.deactivate", "mitra", mitra_id, now, {"revoked_sessions": len(revoked), **extra})
        state, _ = _truth_in_tx(tx, mitra_id)
        tx.commit()
    if not mirror.sync(ctx, state):
        access.mark_suspect(ctx)  # access was taken away: repaired from Postgres before trusted again
    return {**mitras.to_json(row), "revoked_sessions": len(revoked), **extra}


def activate(ctx: AppContext, mitra_id: str, actor: str) -> dict[str, Any]:
    """Re-activate a mitra (it stays offline until it goes online itself)."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = mitras.require(tx, mitra_id, for_update=True)
        if not row["is_active"]:
            row = mitras.update(tx, mitra_id, now, is_active=True)
            mitras.log_status(tx, mitra_id, "activated", actor, now)
            feed.add(tx, "mitra", mitra_id, feed.ACCOUNT, now, status="active")
        audit.record(tx, actor, "mitra.activate", "mitra", mitra_id, now)
        state, _ = _truth_in_tx(tx, mitra_id)
        tx.commit()
    mirror.sync(ctx, state)
    return mitras.to_json(row)


def create_mitra(
    ctx: AppContext, phone_e164: str, display_name: str, max_sessions: int | None, actor: str
) -> dict[str, Any]:
    """Onboard a mitra (offline, active); 409 PHONE_TAKEN for a known phone."""
    with ctx.db.transaction() as tx:
        row = mitras.create(tx, phone_e164, display_name, max_sessions)
        detail = {"phone": phone_e164, "display_name": display_name}
        audit.record(tx, actor, "mitra.create", "mitra", str(row["id"]), ctx.now(), detail)
        state, _ = _truth_in_tx(tx, str(row["id"]))
        tx.commit()
    if max_sessions is not None:
        mirror.sync(ctx, state)
    return mitras.to_json(row)


def edit_mitra(ctx: AppContext, mitra_id: str, changes: dict[str, Any], actor: str) -> dict[str, Any]:
    """Edit display_name / max_concurrent_sessions; log what changed; re-derive availability."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = mitras.require(tx, mitra_id, for_update=True)
        before = {k: row[k] for k in changes}
        changed = {k: v for k, v in changes.items() if before[k] != v}
        if changed:
            row = mitras.update(tx, mitra_id, now, **changed)
            detail = {k: {"from": before[k], "to": v} for k, v in changed.items()}
            mitras.log_status(tx, mitra_id, "edited", actor, now, detail)
        audit.record(tx, actor, "mitra.edit", "mitra", mitra_id, now, changes)
        state, _ = _truth_in_tx(tx, mitra_id)
        tx.commit()
    if "max_concurrent_sessions" in changed:
        mirror.sync(ctx, state)
    return mitras.to_json(row)


def recompute_capacity(ctx: AppContext, mitra_id: str) -> dict[str, Any] | None:
    """Count the mitra's active+pending_payment sessions in Postgres; write used/max + available."""
    with ctx.db.transaction() as tx:
        found = truth.mitras_by_id(tx, [mitra_id])
        default = truth.default_max(tx)
    if not found:
        return None
    mirror.sync(ctx, found[0])
    return _status_json(found[0], default)


def sync_mitras(ctx: AppContext, mitra_ids: list[str]) -> int:
    """Re-mirror the Postgres truth of several mitras (after a batched change); returns how many."""
    if not mitra_ids:
        return 0
    with ctx.db.transaction() as tx:
        rows = truth.mitras_by_id(tx, mitra_ids)
    return sum(1 for row in rows if mirror.sync(ctx, row))


def set_app_config(ctx: AppContext, key: str, value: Any, actor: str) -> dict[str, Any]:
    """Validate and store an app_config value; mirror the default max when that key changes."""
    saved = app_config.put(ctx, key, value, actor)
    if key == "mitra_max_concurrent_sessions":
        mirror.set_default_max(ctx, int(saved["value"]))
    return saved


# ---- the heartbeat -------------------------------------------------------------------------


def heartbeat(ctx: AppContext, principal: Principal) -> dict[str, Any]:
    """One Valkey round trip when the mirror is healthy; the full Postgres guard and write otherwise.

    The script's access answers count only while the instance trusts the mirror (no new
    Valkey connection and no failed access write since its last repair; see
    shared.availability.access); a suspect instance repairs first, or uses Postgres.
    """
    error: BaseException | None = None
    outcome, live = "untrusted", None
    try:
        trusted_at = access.trust(ctx)
        if trusted_at is not None:
            outcome, live = mirror.heartbeat(ctx, principal.user_id, principal.session_id)
            stale = outcome in ("online", "offline") and not access.still_trusted(ctx, trusted_at)
            if stale:  # reconnected meanwhile: the server may differ from the one repaired
                outcome, live = "untrusted", None
    except VALKEY_ERRORS as exc:
        access.mark_suspect(ctx)
        outcome, live, error = "unavailable", None, exc
    if outcome == "inactive":
        raise Forbidden("this mitra account is deactivated", code="ACCOUNT_INACTIVE")
    if outcome == "revoked":
        raise Unauthorized("session revoked", code="SESSION_REVOKED")
    if live is not None:
        return live.to_json()
    _fallback("heartbeat", error)
    result = _heartbeat_in_postgres(ctx, principal, reach_mirror=error is None)
    if outcome == "unseeded":
        ensure_seeded(ctx)
    return result


def _heartbeat_in_postgres(ctx: AppContext, principal: Principal, *, reach_mirror: bool) -> dict[str, Any]:
    """Deactivated -> 403, revoked -> 401, else write the ping to last_heartbeat_at (online only).

    One transaction on one connection: the session check runs in it too. The ping then goes to
    the mirror as well, so that no later answer shows an older one: at once when Valkey
    answers (`reach_mirror`); otherwise the first such ping of this instance counts a miss in
    the same transaction, and the repair that every instance runs on a miss replays it (with
    every later one) from Postgres before it trusts the mirror again.
    """
    now = ctx.now()
    count_miss = not reach_mirror and access.should_count_missed_ping(ctx)
    with ctx.db.transaction() as tx:
        row = mitras.get(tx, principal.user_id)
        if row is None or not row["is_active"]:
            raise Forbidden("this mitra account is deactivated", code="ACCOUNT_INACTIVE")
        if tokens.session_revoked_in(tx, principal.session_id, now):
            raise Unauthorized("session revoked", code="SESSION_REVOKED")
        mitras.record_heartbeat(tx, principal.user_id, now)
        state = truth.status_of(tx, principal.user_id)
        default = truth.default_max(tx)
        if count_miss and state is not None and state.online:
            access.count_miss(tx)
        tx.commit()
    assert state is not None
    if state.online:
        if count_miss:
            access.missed_ping_counted(ctx)
        elif reach_mirror:
            _ping_to_mirror(ctx, state)
    return _status_json(state, default)


def _ping_to_mirror(ctx: AppContext, state: MitraTruth) -> None:
    """Raise the mirror's ping to the one Postgres now holds; a failure counts a miss instead."""
    try:
        mirror.replay_pings(ctx, [(state.id, state.heartbeat_ms)])
        return
    except VALKEY_ERRORS as exc:
        log.warning("ping not mirrored; counted for the repair", extra={"error": type(exc).__name__})
    access.mark_suspect(ctx)
    if not access.should_count_missed_ping(ctx):
        return
    try:
        with ctx.db.transaction() as tx:
            access.count_miss(tx)
            tx.commit()
    except DatabaseUnavailable:  # the ping is answered and in Postgres; the reseed restores it
        log.warning("ping neither mirrored nor counted: Postgres went away after its commit")
        return
    access.missed_ping_counted(ctx)


# ---- read paths (mirror first, Postgres fallback) ----------------------------------------------


def is_mitra_reachable(ctx: AppContext, mitra_id: str) -> bool:
    """Online, not deactivated and with a fresh heartbeat."""
    reachable, _ = _mirror_or_postgres(
        ctx,
        "is_mitra_reachable",
        lambda: mirror.is_reachable(ctx, mitra_id),
        lambda tx: truth.is_reachable(tx, mitra_id, _cutoff(ctx)),
    )
    return reachable


def find_available_mitras(ctx: AppContext, limit: int, exclude: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Up to `limit` fresh available mitras not in `exclude`, fairly rotated across calls."""
    limit = max(0, min(limit, MAX_FIND_LIMIT))
    excluded = [str(x) for x in exclude]
    found, _ = _mirror_or_postgres(
        ctx,
        "find_available_mitras",
        lambda: mirror.find_available(ctx, limit, excluded),
        lambda tx: truth.find_available(tx, _cutoff(ctx), limit, excluded),
    )
    return found


def count_available(ctx: AppContext) -> dict[str, Any]:
    """The beacon: {available, as_of, source} from the shared 10 s snapshot, or Postgres."""

    def from_mirror() -> tuple[int, str] | None:
        found = mirror.count_available(ctx)
        if found is None:
            return None
        n, as_of_ms = found
        return n, datetime.fromtimestamp(as_of_ms / 1000, UTC).isoformat()

    (n, as_of), source = _mirror_or_postgres(
        ctx,
        "count_available",
        from_mirror,
        lambda tx: (truth.count_available(tx, _cutoff(ctx)), ctx.now().isoformat()),
    )
    return {"available": n, "as_of": as_of, "source": source}


def dashboard_counts(ctx: AppContext) -> dict[str, Any]:
    """{online, available, deactivated, source}: SCARD/ZCOUNT on the mirror, or one Postgres scan."""
    counts, source = _mirror_or_postgres(
        ctx,
        "dashboard_counts",
        lambda: mirror.dashboard_counts(ctx),
        lambda tx: truth.dashboard_counts(tx, _cutoff(ctx)),
    )
    return {**counts, "source": source}


def dashboard(ctx: AppContext, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """The control-center dashboard: mitra counts (now) from the mirror, session counts from Postgres.

    With `start` / `end` the session counts are of the sessions requested within `[start, end)`.
    """
    counts = dashboard_counts(ctx)
    with ctx.db.transaction() as tx:
        sessions = truth.session_counts(tx, start, end)
    return {
        **counts,
        "sessions": sessions,
        "as_of": ctx.now().isoformat(),
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
    }


def mitra_status(ctx: AppContext, mitra_id: str) -> dict[str, Any]:
    """A mitra's own status (online, used, max, last_heartbeat_at)."""

    def from_mirror() -> dict[str, Any] | None:
        found = mirror.status(ctx, mitra_id)
        return None if found is None else {k: found[k] for k in ("online", "used", "max", "last_heartbeat_at")}

    def from_postgres(tx: Tx) -> dict[str, Any]:
        row = mitras.require(tx, mitra_id)
        return _status_json(*_truth_in_tx(tx, str(row["id"])))

    status, _ = _mirror_or_postgres(ctx, "mitra_status", from_mirror, from_postgres)
    return status


def list_mitras(
    ctx: AppContext, limit: int, cursor: str | None, *, search: str | None = None, status: str | None = None
) -> dict[str, Any]:
    """A page of mitras with their live status from the mirror (Postgres when it is not usable)."""
    rows, next_cursor = mitras.list_page(ctx, limit, cursor, search=search, status=status)
    items, source = _with_live(ctx, rows)
    return {"mitras": items, "next_cursor": next_cursor, "live_source": source}


def mitra_with_live(ctx: AppContext, mitra_id: str) -> dict[str, Any]:
    """One mitra with its live status (mirror first, Postgres fallback); 404 MITRA_NOT_FOUND."""
    with ctx.db.transaction() as tx:
        row = mitras.require(tx, mitra_id)
    items, source = _with_live(ctx, [row])
    return {**items[0], "live_source": source}


def _with_live(ctx: AppContext, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    ids = [str(r["id"]) for r in rows]
    live, source = _mirror_or_postgres(
        ctx,
        "list_mitras",
        lambda: mirror.live_statuses(ctx, ids),
        lambda tx: _live_from_postgres(tx, ids, _cutoff(ctx)),
    )
    return [{**mitras.to_json(r), "live": live.get(str(r["id"]))} for r in rows], source


def _live_from_postgres(tx: Tx, ids: list[str], cutoff: datetime) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = truth.mitras_by_id(tx, ids)
    default = truth.default_max(tx)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        fresh = row.last_heartbeat_at is not None and row.last_heartbeat_at > cutoff
        out[row.id] = {
            **_status_json(row, default),
            "deactivated": not row.active,
            "available": fresh and truth.is_available(row.online, row.active, row.used, row.max_override, default),
        }
    return out
