"""Chat messages between a session's customer and mitra (SPEC §11) and the apps' lists (§12).

Messages:  send, messages (long poll with `wait`), mark_read
Lists:     mitra_sessions (offers | current | history), customer_sessions (open | history)

Design (storage, the wait, ordering, fallback, anonymity): docs/chat.md.
"""

from shared.chat.lists import customer_sessions, mitra_sessions
from shared.chat.service import mark_read, messages, send

__all__ = ["customer_sessions", "mark_read", "messages", "mitra_sessions", "send"]
