"""Who is calling: the verified claims of an access token."""

from __future__ import annotations

from typing import NamedTuple

USER_TYPES = ("customer", "mitra", "cc")


class Principal(NamedTuple):
    """An authenticated caller."""

    user_type: str
    user_id: str
    session_id: str
    role: str | None = None
