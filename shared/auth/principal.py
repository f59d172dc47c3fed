"""Who is calling: the verified claims of an access token."""

from __future__ import annotations

from dataclasses import dataclass

USER_TYPES = ("customer", "mitra", "cc")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user_type: str
    user_id: str
    session_id: str
    role: str | None = None
