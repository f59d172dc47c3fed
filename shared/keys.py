"""Every Valkey key name of the system, built here and nowhere else.

All mirror keys share the hash tag `{avail}` so multi-key scripts are legal on a Valkey
cluster (docs/availability.md); the configurable prefix (VALKEY_PREFIX) sits before the tag and keeps
test runs and tenants apart without changing the slot.
"""

from __future__ import annotations

from typing import NamedTuple

TAG = "{avail}"


class Keys(NamedTuple):
    """Key names under one prefix."""

    prefix: str  # VALKEY_PREFIX (its default lives in shared.config)

    def _k(self, suffix: str) -> str:
        return f"{self.prefix}{TAG}:{suffix}"

    @property
    def online(self) -> str:
        return self._k("mitras:online")

    @property
    def deactivated(self) -> str:
        return self._k("mitras:deactivated")

    @property
    def used(self) -> str:
        return self._k("mitra:used")

    @property
    def max(self) -> str:
        return self._k("mitra:max")

    @property
    def heartbeat(self) -> str:
        return self._k("mitra:heartbeat")

    @property
    def available(self) -> str:
        return self._k("mitras:available")

    @property
    def ring(self) -> str:
        """Same members as `available`, all scored 0, so ZRANGEBYLEX can walk them in a fixed order."""
        return self._k("mitras:ring")

    @property
    def ring_cursor(self) -> str:
        """The last mitra handed out by find_available_mitras (the rotating cursor)."""
        return self._k("ring:cursor")

    @property
    def seed_dirty(self) -> str:
        """Mitras mirrored while a seed held the lock; the seed re-syncs them after its swap."""
        return self._k("seed:dirty")

    @property
    def snapshot(self) -> str:
        return self._k("snapshot")

    @property
    def seeded(self) -> str:
        return self._k("seeded")

    @property
    def seed_lock(self) -> str:
        return self._k("lock:seed")

    @property
    def config(self) -> str:
        """Cached copy of app_config values that hot paths need (default max sessions)."""
        return self._k("config")

    @property
    def heartbeat_watermark(self) -> str:
        """Highest heartbeat (ms) already copied to Postgres by the heartbeat-mirror sweep."""
        return self._k("heartbeat:watermark")

    def revoked(self, sid: str) -> str:
        return self._k(f"revoked:{sid}")

    @property
    def access_repaired(self) -> str:
        """How many missed revocation marks (Postgres `access_mirror_misses`) the mirror has repaired."""
        return self._k("access:repaired")

    def temp(self, name: str, token: str) -> str:
        """A scratch key for building `name` before an atomic swap (same slot)."""
        return self._k(f"tmp:{token}:{name}")

    def rate(self, bucket: str, subject: str) -> str:
        """A rate-limit counter (hash-tagged per subject, not part of the mirror)."""
        return f"{self.prefix}rate:{{{bucket}:{subject}}}"

    def last_otp(self, phone_e164: str) -> str:
        """The last code the `log` SMS provider sent to a phone (test/dev endpoint only)."""
        return f"{self.prefix}otp:last:{{{phone_e164}}}"

    def sign_in_nonce(self, nonce_digest: str) -> str:
        """A server-issued sign-in nonce (by its SHA-256), holding what it is bound to."""
        return f"{self.prefix}nonce:{{{nonce_digest}}}"

    @property
    def chat_wake(self) -> str:
        """The pub/sub channel that wakes long-polling chat readers (outside the mirror's slot)."""
        return f"{self.prefix}chat:wake"
