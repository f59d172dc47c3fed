"""Account lifecycle across packages: customer and mitra deletion, Apple's account notifications,
logout with its devices and availability (sessions), the mitra's own profile edit.

These services end chat sessions, take mitras offline or forget devices, so they sit beside
pairing, chat and cc, above the session core (docs/architecture.md), not inside shared.auth.
"""
