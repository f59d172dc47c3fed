"""The one place where adapters are built and chosen (the bootstrap).

An entry point module calls `context.init(required=...)` at import: settings are parsed then
(fail-fast on missing secrets), while the Postgres pool and the Valkey client are built
lazily on first use and reused across warm invocations. Services take an `AppContext`, so
tests can build their own with other settings, a fixed clock or another key prefix.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from shared import config
from shared import log as jsonlog
from shared.config import Settings
from shared.db import Database
from shared.errors import ConfigError
from shared.keys import Keys
from shared.valkey import Client, make_client

Clock = Callable[[], datetime]

# Every entry point imports this module first, so logging is JSON from a cold start's first line.
jsonlog.configure()
_log = logging.getLogger("bestie.context")


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


class AppContext:
    """Settings plus lazily built, thread-safe adapters."""

    def __init__(self, settings: Settings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.keys = Keys(settings.valkey_prefix)
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []
        self._valkey_connects: dict[str, int] = {}
        self._connects_lock = threading.Lock()

    def now(self) -> datetime:
        return self.clock()

    def now_ms(self) -> int:
        """Milliseconds since the epoch, by this context's clock."""
        return int(self.clock().timestamp() * 1000)

    @cached_property
    def db(self) -> Database:
        with self._lock:
            return Database(self.settings)

    @cached_property
    def valkey(self) -> Client:
        with self._lock:
            return make_client(self.settings, on_connect=self._valkey_connected)

    def _valkey_connected(self, node: str) -> None:
        with self._connects_lock:
            self._valkey_connects[node] = self._valkey_connects.get(node, 0) + 1

    def valkey_connects(self, node: str) -> int:
        """How many connections this context has opened to a Valkey node ("host:port")."""
        with self._connects_lock:
            return self._valkey_connects.get(node, 0)

    def singleton(self, name: str, factory: Callable[[], Any]) -> Any:
        """Build an adapter once per context (push, SMS, verifiers...), thread-safely."""
        with self._lock:
            if name not in self._cache:
                self._cache[name] = factory()
            return self._cache[name]

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run `closer` in close() (background threads of adapters); safe inside singleton()."""
        self._closers.append(closer)

    def close(self) -> None:
        """Release pooled connections (tests and the dev server's shutdown)."""
        for closer in self._closers:
            closer()
        if "db" in self.__dict__:
            self.db.close()
        if "valkey" in self.__dict__:
            self.valkey.close()


_current: AppContext | None = None
_current_lock = threading.Lock()


def init(required: Sequence[str] = (config.DATABASE, config.VALKEY)) -> AppContext:
    """Parse settings now (fail fast) and return the process-wide context.

    Settings are parsed once per process; once the context exists, a call (each endpoint of an
    entry point module makes one at import) checks only that what it requires is set.
    """
    global _current
    with _current_lock:
        try:
            if _current is not None:
                config.check_required(required)
                return _current
            settings = config.load(required)
        except ConfigError as exc:
            # The runtime prints the import error as plain text; this line is the one Cloud
            # Logging can filter on (severity CRITICAL), naming the variable, never its value.
            _log.critical("cold start failed: %s", exc)
            raise
        _current = AppContext(settings)
        return _current


def current() -> AppContext:
    """The process-wide context (built on first use)."""
    return _current or init()


def install(ctx: AppContext | None) -> None:
    """Replace the process-wide context (tests, the dev server)."""
    global _current
    with _current_lock:
        _current = ctx
