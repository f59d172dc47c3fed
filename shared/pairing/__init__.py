"""Pairing: the beacon, the blast, race-free accept, the lifecycle's transitions.

Customer:  beacon, request_session, get_session, cancel, extend, end_by_customer, reroute
Mitra:     accept, decline, end_by_mitra
Payments:  confirm_payment (the control center's payment webhook stand-in)
Staff:     reroute_by_staff (moderation; docs/control-center.md)

The session row, its state machine, deadlines and timeline are shared.sessions.
Design and the state machine: docs/pairing.md.
"""

from shared.pairing.service import (
    accept,
    beacon,
    cancel,
    confirm_payment,
    decline,
    end_by_customer,
    end_by_mitra,
    extend,
    get_session,
    request_session,
    reroute,
    reroute_by_staff,
)

__all__ = [
    "accept",
    "beacon",
    "cancel",
    "confirm_payment",
    "decline",
    "end_by_customer",
    "end_by_mitra",
    "extend",
    "get_session",
    "request_session",
    "reroute",
    "reroute_by_staff",
]
