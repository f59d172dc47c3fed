"""Control-center services (docs/control-center.md): customers (search, block), chat-session views, staff
accounts (role, active flag, unlock) and the audit trail every change writes.

Design and decisions: docs/control-center.md.
"""
