"""What a mitra may know about a customer (docs/chat.md, the control center's anonymity setting).

app_config `mitra_sees_customer_name` (a boolean, default false; a stored 0/1 reads alike).
With false a mitra sees a stable alias derived from the customer id ("Customer 7F3A"), never
the display name, phone or email; with true it sees the display name (still never phone or
email). Every payload built for a mitra (session lists, messages, offers, pushes) takes the
customer's name from `customer_for_mitra` and nowhere else, so the rule lives in one place.
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared import app_config
from shared.context import AppContext
from shared.db import Tx

SETTING = "mitra_sees_customer_name"
DELETED_NAME = "Deleted user"  # the display name account deletion leaves (shared.accounts.deletion)


def alias(customer_id: str) -> str:
    """The stable, non-identifying name a mitra sees for this customer."""
    digest = hashlib.sha256(f"bestie-customer:{customer_id}".encode()).hexdigest()
    return f"Customer {digest[:4].upper()}"


def mitra_sees_name(ctx: AppContext) -> bool:
    """The current anonymity setting (True: mitras see display names), read on its own."""
    return bool(int(app_config.get(ctx, SETTING)))


def mitra_sees_name_in(tx: Tx) -> bool:
    """The current anonymity setting, read inside the caller's transaction."""
    return bool(int(app_config.get_in(tx, SETTING)))


def customer_for_mitra(customer_id: Any, display_name: str | None, sees_name: bool) -> dict[str, str]:
    """{id, display_name} of a customer as a mitra may see it: an alias unless names are allowed."""
    cid = str(customer_id)
    if display_name == DELETED_NAME:  # a deleted account: its transcript reads "Deleted user"
        return {"id": cid, "display_name": DELETED_NAME}
    shown = display_name if sees_name and display_name else alias(cid)
    return {"id": cid, "display_name": shown}
