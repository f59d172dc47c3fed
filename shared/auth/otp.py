"""Phone one-time codes: request (limits, cooldown, SMS) and verify (bound to request and flow).

Codes are 6 digits from `secrets`, stored only as HMAC-SHA256 under OTP_HMAC_SECRET, bound
to their request id and flow, and work once. TTL, cooldown, attempts and hourly limits are
read from app_config on every request (the control center may change them). Per-IP and
per-phone counters live in shared storage (shared.ratelimit); the resend cooldown is read
from `otp_requests` under a per-phone advisory lock, so two instances cannot both send.
Customer codes go only to the country calling codes of OTP_ALLOWED_COUNTRY_CODES (default
Indonesia, 62), else 400 PHONE_COUNTRY_NOT_ALLOWED before anything is counted or sent: a
service that texts any number pays for SMS pumping to premium ranges.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared import app_config, mitras, phones, ratelimit, sms
from shared.context import AppContext
from shared.db import Tx
from shared.errors import ApiError, BadRequest, ConfigError, NotFound, RateLimited, ValidationFailed

log = logging.getLogger(__name__)

CODE_DIGITS = 6
HOUR = 3600


class OtpError(ApiError):
    """A verify failure the app shows to the user (code names which one)."""

    status = 400


def _hmac_secret(ctx: AppContext) -> bytes:
    secret = ctx.settings.otp_hmac_secret
    if not secret:
        raise ConfigError("missing required environment variable OTP_HMAC_SECRET")
    return secret.encode()


def code_hash(ctx: AppContext, request_id: str, flow: str, code: str) -> bytes:
    """HMAC of the code bound to its request and flow (a code never works elsewhere)."""
    return hmac.new(_hmac_secret(ctx), f"{request_id}:{flow}:{code}".encode(), hashlib.sha256).digest()


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def request_code(ctx: AppContext, flow: str, phone: str, client_ip: str) -> dict[str, Any]:
    """Create and send a code for `phone` (E.164); return request_id, expires_in, resend_after_seconds."""
    if flow == "customer" and phones.calling_code(phone) not in ctx.settings.otp_allowed_country_codes:
        raise BadRequest("codes are not sent to this country", code="PHONE_COUNTRY_NOT_ALLOWED", field="phone")
    cfg = app_config.get_all(ctx)
    ttl, cooldown = int(cfg["otp_ttl_seconds"]), int(cfg["otp_resend_cooldown_seconds"])
    # Counted before the phone is looked up: MITRA_NOT_FOUND / ACCOUNT_INACTIVE answers are
    # an enumeration oracle, so each one costs the caller's IP a hit like a sent code does.
    per_ip = ratelimit.Limit("otp_ip", int(cfg["otp_max_requests_per_ip_per_hour"]), HOUR)
    ratelimit.hit(ctx, per_ip, ratelimit.client_network(client_ip))
    if flow == "mitra":
        with ctx.db.transaction() as tx:
            mitras.require_active_by_phone(tx, phone)  # no SMS for unknown or deactivated mitras
    now = ctx.now()
    with ctx.db.transaction() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('otp:' || :p))", p=phone)
        last = tx.scalar("SELECT max(created_at) FROM otp_requests WHERE phone_e164 = :p", p=phone)
        if last is not None and (wait := (last + timedelta(seconds=cooldown) - now).total_seconds()) > 0:
            raise RateLimited(int(wait + 0.999), "wait before asking for another code", code="RESEND_COOLDOWN")
        ratelimit.hit(ctx, ratelimit.Limit("otp_phone", int(cfg["otp_max_requests_per_hour"]), HOUR), phone)
        code, request_id = new_code(), str(uuid.uuid4())
        tx.execute(
            "INSERT INTO otp_requests (id, phone_e164, flow, code_hash, created_at, expires_at, client_ip)"
            " VALUES (CAST(:id AS uuid), :p, :f, :h, :now, :exp, :ip)",
            id=request_id,
            p=phone,
            f=flow,
            h=code_hash(ctx, request_id, flow, code),
            now=now,
            exp=now + timedelta(seconds=ttl),
            ip=client_ip,
        )
        tx.commit()
    _send(ctx, request_id, phone, code, ttl)
    return {"request_id": request_id, "phone": phone, "expires_in": ttl, "resend_after_seconds": cooldown}


def _send(ctx: AppContext, request_id: str, phone: str, code: str, ttl: int) -> None:
    """Send after the row is committed; a provider failure deletes the row (never left usable)."""
    try:
        ref = sms.provider(ctx).send_otp(phone, code, ttl)
    except Exception:
        with ctx.db.transaction() as tx:
            tx.execute("DELETE FROM otp_requests WHERE id = CAST(:id AS uuid)", id=request_id)
            tx.commit()
        raise
    if ref:
        with ctx.db.transaction() as tx:
            tx.execute(
                "UPDATE otp_requests SET provider_ref = :r WHERE id = CAST(:id AS uuid)", r=ref[:200], id=request_id
            )
            tx.commit()


@dataclass(frozen=True)
class Verified:
    phone: str
    request_id: str


def parse_code(code: str) -> str:
    """The code as sent, or 400 VALIDATION_FAILED (field `code`) unless it is CODE_DIGITS ASCII digits.

    Checked before the code request is read, so a typo (5 digits, a letter) costs no attempt.
    """
    if not (len(code) == CODE_DIGITS and code.isascii() and code.isdigit()):
        raise ValidationFailed("code", f"must be {CODE_DIGITS} digits")
    return code


def check_code(ctx: AppContext, tx: Tx, flow: str, request_id: str, code: str) -> Verified:
    """Check and consume a code inside the caller's transaction (which commits on success).

    Call it first in the transaction: a wrong code commits the attempt count (and nothing
    else) before raising, so no later failure can roll the count back.
    """
    max_attempts = int(app_config.get_in(tx, "otp_max_verify_attempts"))
    row = tx.one(
        "SELECT id, phone_e164, flow, code_hash, expires_at, attempts, consumed_at"
        " FROM otp_requests WHERE id = CAST(:id AS uuid) FOR UPDATE",
        id=request_id,
    )
    if row is None:
        raise NotFound("no such code request", code="OTP_NOT_FOUND")
    if row["flow"] != flow:
        raise OtpError(f"this code was requested for the {row['flow']} app", code="WRONG_FLOW")
    if row["consumed_at"] is not None:
        raise OtpError("this code was already used", code="OTP_USED", status=409)
    if row["expires_at"] <= ctx.now():
        raise OtpError("this code has expired, request a new one", code="OTP_EXPIRED", status=410)
    if row["attempts"] >= max_attempts:
        raise OtpError("too many wrong codes, request a new one", code="ATTEMPTS_EXCEEDED", status=429)
    expected = bytes(row["code_hash"])
    if not (len(code) == CODE_DIGITS and code.isdigit()) or not hmac.compare_digest(
        expected, code_hash(ctx, request_id, flow, code)
    ):
        attempts = int(
            tx.scalar(
                "UPDATE otp_requests SET attempts = attempts + 1 WHERE id = CAST(:id AS uuid) RETURNING attempts",
                id=request_id,
            )
        )
        tx.commit()
        raise OtpError("wrong code", code="CODE_MISMATCH", attempts_left=max(0, max_attempts - attempts))
    tx.execute("UPDATE otp_requests SET consumed_at = :now WHERE id = CAST(:id AS uuid)", now=ctx.now(), id=request_id)
    return Verified(phone=row["phone_e164"], request_id=request_id)
