"""Chat messages between a session's customer and mitra (docs/chat.md) and the apps' lists (docs/chat.md, Lists).

Messages:  send, mark_read; the long poll with `wait` is shared.chat.longpoll.messages (async)
Lists:     mitra_sessions (offers | current | history), customer_sessions (open | history),
           mitra_session (one session as its mitra sees it)

Design (storage, the wait, ordering, fallback, anonymity): docs/chat.md.
"""

from shared.chat.lists import customer_sessions, mitra_session, mitra_sessions
from shared.chat.service import mark_read, send

__all__ = ["customer_sessions", "mark_read", "mitra_session", "mitra_sessions", "send"]
