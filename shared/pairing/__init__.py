"""Pairing and chat sessions (SPEC §8): the beacon, the blast, race-free accept, the lifecycle.

Customer:  beacon, request_session, get_session, cancel, extend, end_by_customer, reroute
Mitra:     accept, decline, end_by_mitra
Payments:  confirm_payment (the control center's payment webhook stand-in)
Control:   close_sessions_of_customer + after_sessions_closed (a blocked customer)
Deadlines: settle, settle_one (the sweep's update for the sessions a read or transition touches)
Sweep:     expire_due_sessions(ctx) -> {"expired_searching", "expired_unpaid", "ended_active"}

Design and the state machine: docs/pairing.md.
"""

from shared.pairing.expiry import expire_due_sessions, settle, settle_one
from shared.pairing.service import (
    accept,
    after_sessions_closed,
    beacon,
    cancel,
    close_sessions_of_customer,
    confirm_payment,
    decline,
    end_by_customer,
    end_by_mitra,
    extend,
    get_session,
    request_session,
    reroute,
)

__all__ = [
    "accept",
    "after_sessions_closed",
    "beacon",
    "cancel",
    "close_sessions_of_customer",
    "confirm_payment",
    "decline",
    "end_by_customer",
    "end_by_mitra",
    "expire_due_sessions",
    "extend",
    "get_session",
    "request_session",
    "reroute",
    "settle",
    "settle_one",
]
