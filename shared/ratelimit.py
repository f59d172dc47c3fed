"""Rate limits counted in shared storage (many instances run at once; never process memory).

A sliding window per (bucket, subject): Valkey first (one script call, atomic check-and-count),
Postgres `rate_limit_hits` when Valkey errors. Hits counted in Postgres during an outage are
not copied back to Valkey, so right after an outage a subject can get up to one extra window
of hits; the limits are abuse brakes, not billing, so that is accepted (docs/auth.md).

Lockout windows (failed staff logins, wrong current passwords) are `durable`: they are kept
in Postgres only, never in Valkey, so losing Valkey's data (FLUSHALL, a failover to an empty
replica, an eviction) cannot unlock a guesser. They are written only on failures and read
once per login attempt, which already costs a Postgres read and a bcrypt check.

A per-IP limit keys its subject with `client_network`: an IPv4 address alone, an IPv6 address
by its /64. One subscriber line or cloud VM is handed a whole /64 (RFC 6177 recommends /48 to
/64 per site, and a host picks any of its 2^64 interface ids, RFC 8981), so counting each
IPv6 address alone would give one client 2^64 separate allowances.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from shared.context import AppContext
from shared.errors import RateLimited
from shared.valkey import VALKEY_ERRORS, load_script

log = logging.getLogger(__name__)

_SCRIPT = Path(__file__).with_name("ratelimit.lua")


@dataclass(frozen=True)
class Limit:
    """At most `limit` hits per `window_seconds` in `bucket` for one subject."""

    bucket: str
    limit: int
    window_seconds: int
    code: str = "RATE_LIMITED"
    durable: bool = False  # kept in Postgres only: a lockout that must survive losing Valkey's data


def client_network(ip: str) -> str:
    """The subject a per-IP limit counts: an IPv4 address itself, an IPv6 address's /64 (`2001:db8::/64`).

    An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) counts as its IPv4 address; text that is
    not an address is returned as it is.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def hit(ctx: AppContext, rule: Limit, subject: str) -> None:
    """Count one hit for `subject`, or raise RateLimited (429) with retry_after_seconds."""
    retry_ms = _run(ctx, rule, subject, "hit")
    if retry_ms is not None:
        raise RateLimited(max(1, math.ceil(retry_ms / 1000)), "too many requests, try again later", code=rule.code)


def require_room(
    ctx: AppContext, rule: Limit, subject: str, message: str = "too many requests, try again later"
) -> None:
    """Raise RateLimited (429, rule.code) when `subject`'s window is full; count nothing."""
    retry_ms = full_for_ms(ctx, rule, subject)
    if retry_ms is not None:
        raise RateLimited(max(1, math.ceil(retry_ms / 1000)), message, code=rule.code)


def exceeded(ctx: AppContext, rule: Limit, subject: str) -> bool:
    """True when `subject`'s window is full (counts nothing)."""
    return full_for_ms(ctx, rule, subject) is not None


def full_for_ms(ctx: AppContext, rule: Limit, subject: str) -> int | None:
    """Milliseconds until `subject`'s full window has room again; None when it has room (counts nothing)."""
    return _run(ctx, rule, subject, "peek")


def record(ctx: AppContext, rule: Limit, subject: str) -> None:
    """Count one hit for `subject` whatever its window holds (e.g. a failed login)."""
    _run(ctx, rule, subject, "add")


def reset(ctx: AppContext, rule: Limit, subject: str) -> None:
    """Forget every hit of `subject` (in both stores: either may hold some)."""
    try:
        ctx.valkey.delete(ctx.keys.rate(rule.bucket, subject))
    except VALKEY_ERRORS as exc:
        log.warning("rate limiter reset falls back to Postgres", extra={"error": type(exc).__name__})
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM rate_limit_hits WHERE bucket = :b AND subject = :s", b=rule.bucket, s=subject)
        tx.commit()


def _run(ctx: AppContext, rule: Limit, subject: str, mode: str) -> int | None:
    """Milliseconds until the window has room, or None when it had room (mode: hit/peek/add)."""
    if rule.durable:
        return _hit_postgres(ctx, rule, subject, mode)
    try:
        return _hit_valkey(ctx, rule, subject, mode)
    except VALKEY_ERRORS as exc:
        log.warning("rate limiter falls back to Postgres", extra={"error": type(exc).__name__, "bucket": rule.bucket})
        return _hit_postgres(ctx, rule, subject, mode)


def _hit_valkey(ctx: AppContext, rule: Limit, subject: str, mode: str) -> int | None:
    client = ctx.valkey  # built before singleton() takes the context lock (it is not reentrant)
    script = ctx.singleton("ratelimit.lua", lambda: load_script(client, _SCRIPT))
    allowed, retry_ms = script(
        keys=[ctx.keys.rate(rule.bucket, subject)],
        args=[ctx.now_ms(), rule.window_seconds * 1000, rule.limit, f"{ctx.now_ms()}:{secrets.token_hex(6)}", mode],
    )
    return None if int(allowed) else int(retry_ms)


def _hit_postgres(ctx: AppContext, rule: Limit, subject: str, mode: str) -> int | None:
    now = ctx.now()
    since = now - timedelta(seconds=rule.window_seconds)
    with ctx.db.transaction() as tx:
        # Serialize hits of one subject so two instances cannot both take the last slot.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(:b), hashtext(:s))", b=rule.bucket, s=subject)
        tx.execute(
            "DELETE FROM rate_limit_hits WHERE bucket = :b AND subject = :s AND at <= :since",
            b=rule.bucket,
            s=subject,
            since=since,
        )
        row = tx.one(
            "SELECT count(*) AS n, min(at) AS oldest FROM rate_limit_hits WHERE bucket = :b AND subject = :s",
            b=rule.bucket,
            s=subject,
        )
        assert row is not None
        full = int(row["n"]) >= rule.limit
        retry = None
        if full:
            retry = int((row["oldest"] + timedelta(seconds=rule.window_seconds) - now).total_seconds() * 1000)
        if mode == "add" or (mode == "hit" and not full):
            tx.execute(
                "INSERT INTO rate_limit_hits (bucket, subject, at) VALUES (:b, :s, :now)",
                b=rule.bucket,
                s=subject,
                now=now,
            )
            # Subjects that never come back leave rows behind; each insert clears a few of them,
            # so the table stays as large as the hits inside their windows.
            tx.execute(
                "DELETE FROM rate_limit_hits WHERE ctid = ANY(ARRAY(SELECT ctid FROM rate_limit_hits"
                "   WHERE bucket = :b AND at <= :since LIMIT 100))",
                b=rule.bucket,
                since=since,
            )
        tx.commit()
    return retry
