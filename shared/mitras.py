"""Mitra accounts in Postgres (the truth the availability mirror is derived from)."""

from __future__ import annotations

from typing import Any

from shared.context import AppContext

MITRA_COLUMNS = (
    "id, phone_e164, display_name, is_active, is_online, max_concurrent_sessions,"
    " last_heartbeat_at, created_at, updated_at"
)


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a mitra row."""
    return {
        "id": str(row["id"]),
        "phone": row["phone_e164"],
        "display_name": row["display_name"],
        "is_active": row["is_active"],
        "is_online": row["is_online"],
        "max_concurrent_sessions": row["max_concurrent_sessions"],
        "last_heartbeat_at": row["last_heartbeat_at"].isoformat() if row["last_heartbeat_at"] else None,
        "created_at": row["created_at"].isoformat(),
    }


def seed_mitra(ctx: AppContext, phone_e164: str, display_name: str) -> tuple[dict[str, Any], bool]:
    """Create a mitra, or return the existing one with that phone; (mitra, created)."""
    with ctx.db.transaction() as tx:
        row = tx.one(
            f"INSERT INTO mitras (phone_e164, display_name) VALUES (:p, :n)"  # noqa: S608 (constant columns)
            f" ON CONFLICT (phone_e164) DO NOTHING RETURNING {MITRA_COLUMNS}",
            p=phone_e164,
            n=display_name,
        )
        created = row is not None
        if row is None:
            row = tx.one(f"SELECT {MITRA_COLUMNS} FROM mitras WHERE phone_e164 = :p", p=phone_e164)  # noqa: S608
        tx.commit()
    assert row is not None
    return to_json(row), created
