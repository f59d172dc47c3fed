"""Payments of chat sessions: prices, the provider interface (manual, Midtrans Snap), settlement.

Provider:  shared.payments.gateway.provider(ctx) -> PaymentProvider (create, verify_notification, status)
Service:   shared.payments.service (prices, payments asked on accept and extend, notifications,
           staff confirmation, refunds due)

Design and the money rules: docs/payments.md.
"""
