"""The Valkey mirror of mitra availability at run time: writes, reads, sweep support.

Key layout (all under the `{avail}` hash tag, built by shared.keys; design in
docs/availability.md): `mitras:online` and `mitras:deactivated` SETs, `mitra:used` /
`mitra:max` HASHes, `mitra:heartbeat` ZSET (id -> last ping ms, online mitras only), the
derived `mitras:available` ZSET (id -> last ping; online and not deactivated and used < max)
and its twin `mitras:ring` (same members, score 0) walked by a rotating cursor for fair picks,
`config` (default max), `snapshot`, `seeded`, the seed lock and the seed's dirty set. Every
multi-key mutation is one Lua script from this package (loaded once per client, called by
SHA), so `available` never disagrees with the sets it is derived from; a change of the
default max re-derives the online mitras in pages of short scripts, each mitra atomically
(`set_default_max`).

Writes take the Postgres truth the caller has just committed and are best-effort: a Valkey
error is logged and swallowed (the reseed sweep heals drift). Reads return None when Valkey
failed or the mirror is not seeded; `shared.availability.api` then answers from Postgres.
Building the mirror from Postgres (the seed and its lock) is `shared.availability.seed`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from redis.commands.core import Script

from shared import valkey as valkey_adapter
from shared.availability import truth
from shared.availability.truth import MitraTruth
from shared.context import AppContext
from shared.valkey import VALKEY_ERRORS

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
SCRIPT_NAMES = (
    "sync_mitra",
    "heartbeat",
    "find_available",
    "count_available",
    "remove_offlined",
    "set_default_max",
    "swap_seed",
    "seed_fill",
    "seed_catch_up",
    "release_lock",
    "pings_since",
    "stale_scan",
    "replay_pings",
)
# Valkey scripts cannot import: a script sharing a function gets its file prepended. Those that
# derive `available` entries or answer a mitra's maximum get the one copy of the rule; the
# sweeps' readers the one paging by score.
_PRELUDES = {
    "sync_mitra": "_available_rule",
    "set_default_max": "_available_rule",
    "heartbeat": "_available_rule",
    "pings_since": "_score_page",
    "stale_scan": "_score_page",
}
SNAPSHOT_TTL_MS = 10_000
SEED_CHUNK = 500  # mitras per seed page and fill script: each blocks Valkey for a few ms at a million
# Members per auto-offline script call: at a million online each stays well under 50 ms of
# Valkey time (docs/capacity.md, "A million online").
STALE_PAGE = 1000
OFFLINE_CHUNK = 500
DEFAULT_MAX_PAGE = 500  # online mitras per set_default_max script (SSCAN COUNT, a hint): about 2 ms of Valkey


def scripts(ctx: AppContext) -> dict[str, Script]:
    """The mirror's scripts, registered once per context (EVALSHA, reloaded on NOSCRIPT)."""
    client = ctx.valkey  # built outside singleton(): both take the context's (non-reentrant) lock
    result: dict[str, Script] = ctx.singleton(
        "availability.scripts",
        lambda: {
            name: valkey_adapter.load_script(
                client, _HERE / f"{name}.lua", prelude=_HERE / f"{_PRELUDES[name]}.lua" if name in _PRELUDES else None
            )
            for name in SCRIPT_NAMES
        },
    )
    return result


def _mutation_keys(ctx: AppContext) -> list[str]:
    k = ctx.keys
    return [
        k.online,
        k.deactivated,
        k.used,
        k.max,
        k.heartbeat,
        k.available,
        k.ring,
        k.config,
        k.seed_lock,
        k.seed_dirty,
    ]


def cutoff_ms(ctx: AppContext) -> int:
    """Heartbeats at or before this instant are stale."""
    return ctx.now_ms() - ctx.settings.mitra_heartbeat_stale_seconds * 1000


# ---- writes (best-effort) ----------------------------------------------------------------


class LiveStatus(NamedTuple):
    """A mitra's status as the mirror (or Postgres) has it."""

    online: bool
    used: int
    max: int
    last_heartbeat_ms: int | None

    def to_json(self) -> dict[str, Any]:
        at = iso_from_ms(self.last_heartbeat_ms) if self.last_heartbeat_ms else None
        return {"online": self.online, "used": self.used, "max": self.max, "last_heartbeat_at": at}


_second_head: tuple[int, str] = (-1, "")


def iso_from_ms(ms: int) -> str:
    """`datetime.fromtimestamp(ms / 1000, UTC).isoformat()`, exact, and cheap on the heartbeat path.

    Consecutive pings fall in the same second, so the formatted second is kept between calls.
    """
    global _second_head
    seconds, millis = divmod(ms, 1000)
    cached_second, head = _second_head
    if cached_second != seconds:
        head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_head = (seconds, head)
    return f"{head}.{millis * 1000:06d}+00:00" if millis else f"{head}+00:00"


def sync(ctx: AppContext, row: MitraTruth, *, heartbeat_ms: int | None = None) -> bool:
    """Write one mitra's truth to the mirror (heartbeat set when given, else kept); False on a Valkey error."""
    try:
        scripts(ctx)["sync_mitra"](
            keys=_mutation_keys(ctx),
            args=[
                row.id,
                "1" if row.online else "0",
                "1" if row.active else "0",
                row.used,
                "" if row.max_override is None else row.max_override,
                "" if heartbeat_ms is None else heartbeat_ms,
                row.heartbeat_ms,
            ],
        )
        return True
    except VALKEY_ERRORS as exc:
        log.warning("mirror write failed; the reseed sweep heals it", extra={"error": type(exc).__name__})
        return False


def remove_offlined(ctx: AppContext, ids_csv: str, chunk: int | None = None) -> int:
    """Take mitras Postgres has just set offline (ids as one comma-separated string) out of the
    mirror, each atomically, in scripts of at most `chunk` (OFFLINE_CHUNK) mitras; raise on
    Valkey errors."""
    if not ids_csv:
        return 0
    chunk = chunk or OFFLINE_CHUNK
    k = ctx.keys
    keys = [k.online, k.heartbeat, k.available, k.ring, k.seed_lock, k.seed_dirty]
    ids = ids_csv.split(",")
    script = scripts(ctx)["remove_offlined"]
    return sum(int(script(keys=keys, args=[",".join(ids[i : i + chunk])])) for i in range(0, len(ids), chunk))


def set_default_max(ctx: AppContext, value: int) -> bool:
    """Mirror a new app_config default max and re-derive every online mitra, in scripts of about
    DEFAULT_MAX_PAGE members each; False on a Valkey error.

    The first script writes the default (and marks a running seed dirty) before it derives
    anything, so every write between two pages derives under the new default; the online set is
    walked by SSCAN (set_default_max.lua says why its repeats and misses are harmless). An error
    between two pages leaves the default written and the pages not yet reached derived under
    the old one, until the reseed sweep rebuilds the mirror from Postgres (which the seed
    reads the default from), as after any failed mirror write.
    """
    page = DEFAULT_MAX_PAGE
    script = scripts(ctx)["set_default_max"]
    keys = _mutation_keys(ctx)
    args: list[Any] = [value, "0", page]  # the default goes with the first page only
    derived = 0
    try:
        while True:
            cursor, n = script(keys=keys, args=args)
            derived += int(n)
            if _text(cursor) == "0":
                return True
            args = ["", _text(cursor), page]
    except VALKEY_ERRORS as exc:
        log.warning(
            "mirror default-max write failed; the reseed sweep heals it",
            extra={"error": type(exc).__name__, "rederived": derived},
        )
        return False


# ---- the heartbeat hot path ---------------------------------------------------------------


def heartbeat(ctx: AppContext, mitra_id: str, session_id: str) -> tuple[str, LiveStatus | None]:
    """One round trip: ('unseeded'|'inactive'|'revoked', None) or ('online'|'offline', status).

    Raises a VALKEY_ERRORS exception when Valkey fails (the caller falls back to Postgres).
    """
    k = ctx.keys
    reply = scripts(ctx)["heartbeat"](
        keys=[*_mutation_keys(ctx), k.seeded, k.revoked(session_id)], args=[mitra_id, ctx.now_ms()]
    )
    outcome = str(reply[0])
    if outcome not in ("online", "offline"):
        return outcome, None
    hb = int(float(reply[3])) if reply[3] not in ("", None) else None
    return outcome, LiveStatus(online=outcome == "online", used=int(reply[1]), max=int(reply[2]), last_heartbeat_ms=hb)


def replay_pings(ctx: AppContext, pings: list[tuple[str, int]]) -> int:
    """Raise online mitras' pings to (id, ms) answered from Postgres, never back; raises on Valkey errors."""
    k = ctx.keys
    moved = 0
    for i in range(0, len(pings), SEED_CHUNK):
        chunk = pings[i : i + SEED_CHUNK]
        args = [",".join(p[0] for p in chunk), ",".join(str(p[1]) for p in chunk)]
        moved += int(scripts(ctx)["replay_pings"](keys=[k.online, k.heartbeat, k.available], args=args))
    return moved


# ---- reads: None = not seeded; Valkey errors propagate (the api falls back to Postgres) ----


def find_available(ctx: AppContext, limit: int, exclude: Iterable[str]) -> list[str] | None:
    """Up to `limit` fresh available mitras from the ring cursor, or None."""
    k = ctx.keys
    picked = scripts(ctx)["find_available"](
        keys=[k.seeded, k.available, k.ring, k.ring_cursor], args=[cutoff_ms(ctx), limit, *exclude]
    )
    return None if picked is None else [str(i) for i in picked]


def count_available(ctx: AppContext) -> tuple[int, int] | None:
    """(available, as_of ms) from the shared snapshot, or None."""
    k = ctx.keys
    raw = scripts(ctx)["count_available"](
        keys=[k.seeded, k.snapshot, k.available], args=[cutoff_ms(ctx), ctx.now_ms(), SNAPSHOT_TTL_MS]
    )
    if raw is None:
        return None
    snap = json.loads(raw)
    return int(snap["available"]), int(snap["as_of_ms"])


def is_reachable(ctx: AppContext, mitra_id: str) -> bool | None:
    """Online, not deactivated and fresh, or None."""
    k = ctx.keys
    pipe = ctx.valkey.pipeline(transaction=False)
    pipe.exists(k.seeded)
    pipe.sismember(k.online, mitra_id)
    pipe.sismember(k.deactivated, mitra_id)
    pipe.zscore(k.heartbeat, mitra_id)
    seeded, online, deactivated, hb = pipe.execute()
    if not seeded:
        return None
    return bool(online) and not deactivated and hb is not None and hb > cutoff_ms(ctx)


def dashboard_counts(ctx: AppContext) -> dict[str, int] | None:
    """online (SCARD), available (fresh, ZCOUNT) and deactivated (SCARD), or None."""
    k = ctx.keys
    pipe = ctx.valkey.pipeline(transaction=False)
    pipe.exists(k.seeded)
    pipe.scard(k.online)
    pipe.zcount(k.available, f"({cutoff_ms(ctx)}", "+inf")
    pipe.scard(k.deactivated)
    seeded, online, available, deactivated = pipe.execute()
    if not seeded:
        return None
    return {"online": int(online), "available": int(available), "deactivated": int(deactivated)}


def live_statuses(ctx: AppContext, mitra_ids: list[str]) -> dict[str, dict[str, Any]] | None:
    """Per mitra: online, deactivated, available, used, max, last ping — one round trip, or None."""
    if not mitra_ids:
        return {}
    k = ctx.keys
    pipe = ctx.valkey.pipeline(transaction=False)
    pipe.exists(k.seeded)
    pipe.smismember(k.online, mitra_ids)
    pipe.smismember(k.deactivated, mitra_ids)
    pipe.zmscore(k.available, mitra_ids)
    pipe.zmscore(k.heartbeat, mitra_ids)
    pipe.hmget(k.used, mitra_ids)
    pipe.hmget(k.max, mitra_ids)
    pipe.hget(k.config, "default_max")
    seeded, online, deact, avail, hbs, used, maxes, default = pipe.execute()
    if not seeded:
        return None
    cutoff = cutoff_ms(ctx)
    out: dict[str, dict[str, Any]] = {}
    for i, mid in enumerate(mitra_ids):
        status = LiveStatus(
            online=bool(online[i]),
            used=int(used[i] or 0),
            max=truth.effective_max(
                None if maxes[i] is None else int(maxes[i]),
                truth.UNSET_DEFAULT_MAX if default is None else int(default),
            ),
            last_heartbeat_ms=int(hbs[i]) if hbs[i] is not None else None,
        )
        out[mid] = {
            **status.to_json(),
            "deactivated": bool(deact[i]),
            "available": avail[i] is not None and avail[i] > cutoff,
        }
    return out


def status(ctx: AppContext, mitra_id: str) -> dict[str, Any] | None:
    """One mitra's live status from the mirror, or None."""
    found = live_statuses(ctx, [mitra_id])
    return None if found is None else found[mitra_id]


# ---- sweeps support --------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def next_page(start: Any, skip: int, last: Any, same: int) -> tuple[Any, int]:
    """Where a read by score goes on after a page whose last score is `last`, held by `same` of
    its members: at that score, skipping those members (and the ones skipped before, when the
    page did not move past `start`), so a page boundary inside a run of equal scores loses
    nothing. `start` and `last` compare as the caller keeps them (strings or ms)."""
    return last, skip + same if last == start else same


@dataclass(frozen=True)
class StaleScan:
    """The auto-offline sweep's read: the online count and the stale pings, ids and epoch ms as
    comma-separated strings (the client never parses a member)."""

    online: int
    ids_csv: str
    ms_csv: str
    count: int


def stale_scan(ctx: AppContext, cutoff: int, limit: int = 10_000, page: int | None = None) -> StaleScan | None:
    """Up to `limit` online mitras whose last ping is at or before `cutoff` ms, oldest first, and
    how many are online, read in scripts of at most `page` (STALE_PAGE) members; None when no complete seed
    is in place (also when it went away between pages). Raises on Valkey errors.

    Pages go by score, as `ping_chunks` does. A mitra that leaves the stale range between two
    pages (it pinged, or was offlined) can only shift a member of the boundary score to the
    next pass, which still finds it stale; the online count is the first page's.
    """
    k = ctx.keys
    page = page or STALE_PAGE
    script = scripts(ctx)["stale_scan"]
    ids: list[str] = []
    pings: list[str] = []
    online: int | None = None
    start, skip, count = "-inf", 0, 0
    while True:
        want = min(page, limit - count)
        seeded, live, ids_csv, ms_csv, n, last, same = script(
            keys=[k.seeded, k.online, k.heartbeat], args=[cutoff, start, skip, want]
        )
        if not int(seeded):
            return None
        online = int(live) if online is None else online
        n = int(n)
        if n:
            ids.append(_text(ids_csv))
            pings.append(_text(ms_csv))
            count += n
            start, skip = next_page(start, skip, _text(last), int(same))
        if n < want or count >= limit:
            break
    return StaleScan(online or 0, ",".join(ids), ",".join(pings), count)


@dataclass(frozen=True)
class Pings:
    """One chunk of pings for the heartbeat-mirror sweep: ids and epoch ms as comma-separated
    strings, and the highest ping among them."""

    ids_csv: str
    ms_csv: str
    count: int
    highest_ms: int


PINGS_CHUNK = 10_000  # pings per Postgres statement of the heartbeat-mirror pass
PINGS_PAGE = 1000  # pings per Valkey script: a few ms at a million online


def ping_chunks(ctx: AppContext, since_ms: int, chunk: int = PINGS_CHUNK, page: int | None = None) -> Iterator[Pings]:
    """Pings newer than `since_ms`, oldest first, in chunks of at most `chunk`, each read by short
    scripts of at most `page` (PINGS_PAGE) pings; raises on Valkey errors while iterating. The
    client never parses a member: Postgres splits the strings."""
    script = scripts(ctx)["pings_since"]
    page = min(page or PINGS_PAGE, chunk)
    start, skip = since_ms + 1, 0
    ids: list[str] = []
    pings: list[str] = []
    count = highest = 0
    while True:
        ids_csv, ms_csv, n, last, same = script(keys=[ctx.keys.heartbeat], args=[start, skip, page])
        n = int(n)
        if n:
            ids.append(_text(ids_csv))
            pings.append(_text(ms_csv))
            start, skip = next_page(start, skip, int(float(last)), int(same))
            count, highest = count + n, start
        if count and (n < page or count + page > chunk):
            yield Pings(",".join(ids), ",".join(pings), count, highest)
            ids, pings, count = [], [], 0
        if n < page:
            return


def heartbeat_watermark(ctx: AppContext) -> int:
    """The highest ping (ms) the heartbeat-mirror sweep copied to Postgres, 0 if unknown; raises on Valkey errors."""
    raw = ctx.valkey.get(ctx.keys.heartbeat_watermark)
    return int(raw) if raw else 0


def set_heartbeat_watermark(ctx: AppContext, ms: int) -> None:
    """Record that pings up to `ms` are in Postgres; raises on Valkey errors."""
    ctx.valkey.set(ctx.keys.heartbeat_watermark, ms)


def is_seeded(ctx: AppContext) -> bool:
    """True when a complete seed is in place; raises on Valkey errors."""
    return bool(ctx.valkey.exists(ctx.keys.seeded))


# ---- revocation marks (written and read by shared.auth.revocation, replayed by the repair and the seed) ----


def write_marks(ctx: AppContext, session_ids: list[str]) -> bool:
    """SET `{avail}:revoked:<sid>` for one access-token lifetime; False on a Valkey error."""
    try:
        pipe = ctx.valkey.pipeline(transaction=False)
        for sid in session_ids:
            pipe.set(ctx.keys.revoked(sid), "1", ex=ctx.settings.access_token_ttl_seconds)
        pipe.execute()
        return True
    except VALKEY_ERRORS as exc:
        log.warning(
            "revocation mirror write failed; the mirror is not trusted until repaired from Postgres",
            extra={"error": type(exc).__name__, "sessions": len(session_ids)},
        )
        return False


def queue_marks(ctx: AppContext, pipe: Any, revoked: Iterable[tuple[str, datetime]], now: datetime) -> None:
    """Queue on `pipe` the mark of each (sid, revoked_at) for the rest of its access-token lifetime."""
    until_ms = int(now.timestamp() * 1000) - ctx.settings.access_token_ttl_seconds * 1000
    for sid, revoked_at in revoked:
        remaining = int(revoked_at.timestamp() * 1000) - until_ms
        if remaining > 0:
            pipe.set(ctx.keys.revoked(sid), "1", px=remaining)


def revocation_state(ctx: AppContext, sid: str) -> tuple[bool, bool]:
    """(seeded, revoked) for one session in one round trip; raises on Valkey errors."""
    pipe = ctx.valkey.pipeline(transaction=False)
    pipe.exists(ctx.keys.seeded)
    pipe.exists(ctx.keys.revoked(sid))
    seeded, revoked = pipe.execute()
    return bool(seeded), bool(revoked)
