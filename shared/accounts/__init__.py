"""Customer account lifecycle across packages: deletion, and Apple's account notifications.

These services end a customer's chat sessions, so they sit beside pairing, chat and cc, above
the session core (docs/architecture.md), not inside shared.auth.
"""
