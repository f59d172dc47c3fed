"""The chat session: the core that pairing, chat and the control center build on.

states    the state machine: statuses, transitions, deadline kinds (pure)
store     the SQL: the chat_sessions row (columns, reads, locks, every conditional UPDATE) and
          its timeline (chat_session_events, the conversation's messages, system messages)
settle    exact deadlines: settle / settle_one on every read and transition, the sweep's pass
effects   after commit: the readers' wake-up, the mirror's capacity, the pushes
online    a mitra going online is offered the searches already running

shared.pairing, shared.chat and shared.cc import this package and never each other.
Package map and import rules: docs/architecture.md.
"""
