"""Building the Valkey mirror from Postgres: the seed, its lock and its report.

The whole mirror is rebuilt into temp keys in short scripts (one slice of mitras each, merging
live pings and measuring drift on the way) and swapped in by one O(1) script, `seeded` last;
mitras written while the seed held its lock are re-synced after the swap. Protocol:
docs/availability.md ("Seed and lock protocol").
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.availability import mirror, truth
from shared.context import AppContext
from shared.prefetch import prefetched
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)

# The seed lock is a lease renewed by every fill call (seed_fill.lua): a seeder that dies or
# loses Valkey mid-seed (its release then fails too) blocks the next seed for at most this long.
SEED_LOCK_TTL_MS = 30_000
# Pings are scored with the pinging instance's clock: the swap re-applies live pings this much
# older than the fill's start too, so a skewed clock does not lose one.
PING_SKEW_MS = 1000


@dataclass
class SeedReport:
    """What a seed did. `ran` is False when another instance holds the seed lock."""

    ran: bool
    mitras: int = 0
    online: int = 0
    revocations: int = 0
    first_seed: bool = False
    drift: dict[str, int] = field(default_factory=dict)
    resynced: int = 0

    @property
    def drift_total(self) -> int:
        return sum(self.drift.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "mitras": self.mitras,
            "online": self.online,
            "revocations": self.revocations,
            "first_seed": self.first_seed,
            "drift": self.drift,
            "drift_total": self.drift_total,
            "resynced": self.resynced,
        }


_MIRROR_NAMES = ("online", "deactivated", "used", "max", "heartbeat", "available", "ring", "config")


def acquire_seed_lock(ctx: AppContext) -> str | None:
    """SET NX PX the seed lock; return our token, or None when another instance holds it."""
    token = secrets.token_hex(16)
    ok = ctx.valkey.set(ctx.keys.seed_lock, token, nx=True, px=SEED_LOCK_TTL_MS)
    return token if ok else None


def release_seed_lock(ctx: AppContext, token: str) -> None:
    mirror.scripts(ctx)["release_lock"](keys=[ctx.keys.seed_lock], args=[token])


def seed_from_postgres(ctx: AppContext) -> SeedReport:
    """Rebuild the whole mirror from Postgres into temp keys and swap it in; `seeded` last.

    Takes the seed lock (returns ran=False when another instance holds it). Raises on Valkey or
    Postgres errors, after releasing the lock.
    """
    token = acquire_seed_lock(ctx)
    if token is None:
        return SeedReport(ran=False)
    try:
        return _seed_locked(ctx, token)
    except BaseException:
        try:
            release_seed_lock(ctx, token)
            _drop_temp_keys(ctx, token)
        except VALKEY_ERRORS:
            pass
        raise


def _temp_keys(ctx: AppContext, token: str) -> list[str]:
    return [ctx.keys.temp(name, token) for name in _MIRROR_NAMES]


def _retired_keys(ctx: AppContext, token: str) -> list[str]:
    return [ctx.keys.temp(f"{name}:retired", token) for name in _MIRROR_NAMES]


def _drop_temp_keys(ctx: AppContext, token: str) -> None:
    ctx.valkey.unlink(*_temp_keys(ctx, token), *_retired_keys(ctx, token))


def _seed_locked(ctx: AppContext, token: str) -> SeedReport:
    """Build the temp keys in short steps (merging live pings and measuring drift on the way), swap in O(1).

    The snapshot is read page by page inside one REPEATABLE READ transaction, the next page in
    a worker thread while the current one is written to Valkey, so Postgres and Valkey work at
    the same time and every statement stays short.
    """
    now = ctx.now()
    ttl = ctx.settings.access_token_ttl_seconds
    k = ctx.keys
    temp = dict(zip(_MIRROR_NAMES, _temp_keys(ctx, token), strict=True))
    live = dict(
        zip(
            _MIRROR_NAMES,
            [k.online, k.deactivated, k.used, k.max, k.heartbeat, k.available, k.ring, k.config],
            strict=True,
        )
    )
    mitras = 0

    def counted(pages: Iterator[truth.SeedSlice]) -> Iterator[truth.SeedSlice]:
        nonlocal mitras
        for page in pages:
            mitras += page.mitras
            yield page

    with ctx.db.transaction() as tx:
        # One consistent snapshot of mitras, sessions, config and revocations.
        tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        default = truth.default_max(tx)
        revoked = truth.recent_revocations(tx, now - timedelta(seconds=ttl))
        _drop_temp_keys(ctx, token)
        merged_from = ctx.now_ms() - PING_SKEW_MS  # pings after this are applied again by the swap
        with contextlib.closing(prefetched(truth.seed_pages(tx, mirror.SEED_CHUNK))) as pages:
            compared = _fill(ctx, counted(pages), temp, live, token)
    # The pings of the fill's duration (at a million online, most mitras ping during it) go to
    # the temp keys page by page, so the swap applies only the last few.
    caught_up = None if compared is None else _catch_up(ctx, live["heartbeat"], temp, merged_from, token)
    if compared is None or caught_up is None:
        _drop_temp_keys(ctx, token)
        log.warning("seed lock lost during the fill; another seed wins")
        return SeedReport(ran=False)
    pipe = ctx.valkey.pipeline(transaction=False)
    pipe.hset(temp["config"], "default_max", default)
    # Revocations go straight to their live keys, before `seeded` makes the guard trust Valkey.
    mirror.queue_marks(ctx, pipe, revoked, now)
    pipe.exists(k.seeded)
    size_of = {"set": pipe.scard, "hash": pipe.hlen, "zset": pipe.zcard}
    for name, kind in _DRIFT_KINDS:
        size_of[kind](live[name])
    replies = pipe.execute()
    live_sizes = dict(zip((name for name, _ in _DRIFT_KINDS), replies[-len(_DRIFT_KINDS) :], strict=True))
    had = bool(replies[-len(_DRIFT_KINDS) - 1])
    drift = _drift(compared, live_sizes) if had else {}

    keys = [*temp.values(), *live.values(), *_retired_keys(ctx, token), k.snapshot, k.seeded, k.seed_dirty, k.seed_lock]
    reply = mirror.scripts(ctx)["swap_seed"](keys=keys, args=[token, now.isoformat(), caught_up])
    if reply[0] == "ok":
        # Pings that landed after their page was caught up but carry an older score (the
        # pinging instance's clock runs behind) are in the retired heartbeat: apply them too.
        # The swap is done: should Valkey fail here, those mitras' next pings apply them.
        retired = dict(zip(_MIRROR_NAMES, _retired_keys(ctx, token), strict=True))
        with contextlib.suppress(*VALKEY_ERRORS):
            _catch_up(ctx, retired["heartbeat"], live, caught_up - PING_SKEW_MS, "")
    ctx.valkey.unlink(*_retired_keys(ctx, token))  # freed in the background, not inside the swap
    if reply[0] != "ok":
        log.warning("seed lock lost before the swap; another seed wins")
        return SeedReport(ran=False)
    dirty = [str(x) for x in reply[2:]]
    report = SeedReport(
        ran=True,
        mitras=mitras,
        online=compared.get("online", (0, 0, 0))[0],
        revocations=len(revoked),
        first_seed=int(reply[1]) != 1,
        drift=drift,
    )
    report.resynced = _resync(ctx, dirty)
    log.info("availability mirror seeded", extra=report.to_json())
    return report


# Drift is reported for these structures (heartbeat scores change with every ping: not drift).
_DRIFT_KINDS = (("online", "set"), ("deactivated", "set"), ("used", "hash"), ("max", "hash"), ("available", "zset"))


_FILLED = ("online", "deactivated", "used", "max", "heartbeat", "available", "ring")
_COMPARED = ("online", "deactivated", "used", "max", "available")  # seed_fill.lua's reply, in order


def _fill(
    ctx: AppContext, slices: Iterable[truth.SeedSlice], temp: dict[str, str], live: dict[str, str], token: str
) -> dict[str, tuple[int, int, int]] | None:
    """Write every slice into the temp keys, merging live pings and comparing with the live twins.

    Returns per compared structure (members, present live, present live with an equal value), or
    None when the lock lease was lost (it expired, or another seed took it) before the fill ended.
    """
    fill = mirror.scripts(ctx)["seed_fill"]
    keys = [temp[name] for name in _FILLED] + [live[name] for name in _FILLED[:-1]] + [ctx.keys.seed_lock]
    compared: dict[str, tuple[int, int, int]] = {}
    for s in slices:  # one short script per slice (a cluster pipeline cannot carry scripts)
        reply = fill(
            keys=keys,
            args=[
                s.online_ids,
                s.online_ms,
                s.available_flags,
                s.deactivated_ids,
                s.used_ids,
                s.used_vals,
                s.max_ids,
                s.max_vals,
                token,
                SEED_LOCK_TTL_MS,
            ],
        )
        if reply and reply[0] == "lost":
            return None
        for i, name in enumerate(_COMPARED):
            seen = compared.get(name, (0, 0, 0))
            members = int(getattr(s, name))  # the slice's count of that structure
            compared[name] = (seen[0] + members, seen[1] + int(reply[2 * i]), seen[2] + int(reply[2 * i + 1]))
    return compared


CATCH_UP_PAGE = 1000  # pings per seed_catch_up call


def _catch_up(ctx: AppContext, source: str, target: dict[str, str], after_ms: int, token: str) -> int | None:
    """Apply the pings of `source` scored above `after_ms` to the heartbeat and available keys of
    `target` (XX GT: never adding a member, never moving a score back), one short script per
    CATCH_UP_PAGE, renewing the seed lease when `token` is given. Returns the score above which
    pings may still be missing (the swap applies those), or None when the lease was lost."""
    script = mirror.scripts(ctx)["seed_catch_up"]
    keys = [source, target["heartbeat"], target["available"], ctx.keys.seed_lock]
    start, skip = after_ms + 1, 0
    while True:
        reply = script(keys=keys, args=[start, skip, CATCH_UP_PAGE, token, SEED_LOCK_TTL_MS])
        if reply[0] == "lost":
            return None
        n, last, same = int(reply[0]), reply[1], int(reply[2])
        if n:
            start, skip = mirror.next_page(start, skip, int(float(last)), same)
        if n < CATCH_UP_PAGE:
            return start - 1


def _drift(compared: dict[str, tuple[int, int, int]], live_sizes: dict[str, int]) -> dict[str, int]:
    """What the swap heals per structure: set and zset symmetric differences, hash fields that
    differ (a field present on both sides with another value counts once)."""
    out: dict[str, int] = {}
    for name, kind in _DRIFT_KINDS:
        seen, both, equal = compared.get(name, (0, 0, 0))
        live_size = int(live_sizes[name])
        out[name] = (live_size - equal) + (seen - both) if kind == "hash" else seen + live_size - 2 * both
    return out


def _resync(ctx: AppContext, dirty: list[str]) -> int:
    """Re-apply the truth of what was written while the seed ran (its snapshot may predate it)."""
    if not dirty:
        return 0
    ids = [d for d in dirty if not d.startswith("*")]
    with ctx.db.transaction() as tx:
        rows = truth.mitras_by_id(tx, ids) if ids else []
        default = truth.default_max(tx) if "*config" in dirty else None
    if default is not None:
        mirror.set_default_max(ctx, default)
    for row in rows:
        mirror.sync(ctx, row)
    return len(dirty)
