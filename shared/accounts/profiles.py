"""What an app user edits of their own account beyond sign-in: the mitra's display name.

A mitra's name is shown to customers and staff; the edit goes through the same availability
service as a staff edit, so it is logged (`edited`, actor `mitra:<id>`) and audited alike.
"""

from __future__ import annotations

from typing import Any

from shared import availability
from shared.context import AppContext


def rename_mitra(ctx: AppContext, mitra_id: str, display_name: str) -> dict[str, Any]:
    """Set the mitra's display name; the mitra's profile (the `user` shape of its tokens)."""
    row = availability.edit_mitra(ctx, mitra_id, {"display_name": display_name}, f"mitra:{mitra_id}")
    return {**row, "user_type": "mitra"}
