"""`make load CHAOS=1`: faults in the middle of the load, and the invariants checked through them.

During the run, at fixed fractions of it, the fault schedule (FAULTS):
1. kills Valkey (SIGKILL) and restarts it empty on the same port;
2. pauses Valkey (SIGSTOP) for 5 s;
3. restarts Postgres (a fast shutdown, then a start on the same data);
4. kills one of the two serving processes (SIGKILL) and starts it again.

Probes run all along, one request pattern each, beside locust's users:
- **revocation**: a customer signs in and logs out through server A, all along, faults included;
  once the logout answered 204 (its revocation committed), the token is asked on server C, a
  third process that serves nothing but these probes and makes no call while a fault is being
  made, so its first call after each fault comes from an instance that was idle through it. It
  must never answer 200 (a 503 is the documented unavailability).
- **chat**: one writer sends a numbered message through A each tick; one reader long-polls
  through B with its cursor. Ids must grow strictly for the reader; after the run every message
  answered 201 is in Postgres exactly once.
- **heartbeat**: a probe mitra pings through A each tick and reads its status on C; the
  `last_heartbeat_at` it reads must never move backwards, except once per Valkey loss (the
  pings the mirror held and had not yet copied are lost with it: at most one mirror interval).
  After the run and one mirror pass, Postgres holds a ping no older than the last one answered
  before the final mirror interval.

A check that ran zero times is a failure. Each fault's recovery time is measured: from the end
of the fault to the first probe that succeeds again on every kind. 5xx answers are allowed only
inside a fault window plus RECOVERY_ALLOWANCE_SECONDS.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

FAULTS = ("valkey_killed_empty", "valkey_paused", "postgres_restarted", "server_killed")
FAULT_AT = (0.15, 0.35, 0.55, 0.75)  # fractions of the run
PAUSE_SECONDS = 5.0
RECOVERY_ALLOWANCE_SECONDS = 15.0
TICK_SECONDS = 0.5
PROBE_TIMEOUT = 10.0


@dataclass
class Window:
    name: str
    started: float
    ended: float = 0.0
    recovered: dict[str, float] = field(default_factory=dict)  # probe kind -> seconds after `ended`


class Faults(threading.Thread):
    """Run the fault schedule over a run of `seconds`; each action is given by the runner."""

    def __init__(self, seconds: float, actions: dict[str, Callable[[], None]]) -> None:
        super().__init__(daemon=True)
        self.seconds = seconds
        self.actions = actions
        self.windows: list[Window] = []
        self.errors: list[str] = []

    def run(self) -> None:
        begin = time.time()
        for name, at in zip(FAULTS, FAULT_AT, strict=True):
            time.sleep(max(0.0, begin + at * self.seconds - time.time()))
            window = Window(name, time.time())
            self.windows.append(window)
            try:
                self.actions[name]()
            except Exception as exc:  # a fault that could not be made is a failed run, not a crash
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            window.ended = time.time()

    def active(self) -> bool:
        """Whether a fault is being made right now."""
        return any(not w.ended for w in self.windows)

    def inside(self, at: float) -> bool:
        """Whether `at` falls in a fault window or its recovery allowance."""
        return any(w.started <= at <= (w.ended or time.time()) + RECOVERY_ALLOWANCE_SECONDS for w in self.windows)


@dataclass
class Checks:
    ran: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def count(self, kind: str) -> None:
        self.ran[kind] = self.ran.get(kind, 0) + 1


class Probes(threading.Thread):
    """The probes of the module docstring, one tick every TICK_SECONDS until stopped."""

    def __init__(self, a: str, b: str, c: str, plan: dict[str, Any], faults: Faults) -> None:
        super().__init__(daemon=True)
        self.a, self.b, self.c = a, b, c
        self.plan = plan
        self.faults = faults
        self.checks = Checks()
        self.revoked: list[str] = []  # tokens whose logout answered 204
        self.sent: dict[str, int] = {}  # client_message_id -> id, of sends answered 201
        self.after = 0
        self.last_seen: datetime | None = None
        self.valkey_losses = 0
        self.backwards = 0
        self.beats: list[tuple[float, str]] = []  # (when answered, last_heartbeat_at answered)
        self.successes: dict[str, list[float]] = {"revocation": [], "chat": [], "heartbeat": []}
        self._halt = threading.Event()
        self.session = requests.Session()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)

    def run(self) -> None:
        while not self._halt.wait(TICK_SECONDS):
            for probe in (self._revocation, self._chat, self._heartbeat):
                # A server down or slow inside a fault: the next tick tries again.
                with contextlib.suppress(requests.RequestException):
                    probe()

    def _call(self, method: str, url: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.session.request(method, url, headers=headers, timeout=PROBE_TIMEOUT, **kwargs)

    def _revocation(self) -> None:
        signed = self._call("POST", f"{self.a}/api/shared/auth/anonymous")
        if signed.status_code == 201:
            token = signed.json()["access_token"]
            if self._call("POST", f"{self.a}/api/shared/auth/logout", token).status_code == 204:
                self.revoked.append(token)
        if self.faults.active():
            return  # the idle server makes no call during a fault, so its first call after it is the test
        # The newest revoked token at once, and a sample of older ones, on the idle server.
        for token in [*self.revoked[-1:], *self.revoked[-20:-1:5]]:
            answer = self._call("GET", f"{self.c}/api/client/auth/me", token).status_code
            if answer == 200:
                self.checks.violations.append(
                    f"revocation: a token logged out earlier got 200 on the idle server at {time.time():.1f}"
                )
            elif answer == 401:
                self.checks.count("revocation")
                self.successes["revocation"].append(time.time())

    def _chat(self) -> None:
        session, customer, mitra = self.plan["chaos_session"], self.plan["chaos_customer"], self.plan["chaos_mitra"]
        cmid = str(uuid.uuid4())
        sent = self._call(
            "POST",
            f"{self.a}/api/client/chat-sessions/{session}/messages",
            customer,
            json={"client_message_id": cmid, "body": f"probe {len(self.sent)}"},
        )
        if sent.status_code == 201:
            self.sent[cmid] = int(sent.json()["id"])
        read = self._call(
            "GET",
            f"{self.b}/api/mitra/chat-sessions/{session}/messages",
            mitra,
            params={"after": self.after, "wait": 1},
        )
        if read.status_code != 200:
            return
        ids = [int(m["id"]) for m in read.json()["messages"]]
        if ids and (ids != sorted(set(ids)) or ids[0] <= self.after):
            self.checks.violations.append(f"chat: reader after {self.after} got ids {ids[:10]}")
        self.after = max([self.after, *ids])
        self.checks.count("chat_order")
        self.successes["chat"].append(time.time())

    def _heartbeat(self) -> None:
        token = self.plan["chaos_mitra"]
        beat = self._call("POST", f"{self.a}/api/mitra/status/heartbeat", token)
        if beat.status_code == 200 and beat.json().get("last_heartbeat_at"):
            self.beats.append((time.time(), beat.json()["last_heartbeat_at"]))
        if self.faults.active():
            return
        status = self._call("GET", f"{self.c}/api/mitra/status", token)
        if status.status_code != 200 or not status.json().get("last_heartbeat_at"):
            return
        seen = datetime.fromisoformat(status.json()["last_heartbeat_at"])
        if self.last_seen is not None and seen < self.last_seen:
            self.backwards += 1
            if self.backwards > self.valkey_losses:
                self.checks.violations.append(f"heartbeat: last seen moved back from {self.last_seen} to {seen}")
        self.last_seen = max(seen, self.last_seen or seen)
        self.checks.count("heartbeat_monotonic")
        self.successes["heartbeat"].append(time.time())


def chat_exactly_once(ctx: Any, probes: Probes) -> list[str]:
    """Every probe message answered 201 is in Postgres exactly once, with the id it was answered."""
    rows = ctx.db.rows(
        "SELECT client_message_id::text AS cmid, id FROM chat_messages WHERE session_id = CAST(:s AS uuid)"
        " AND client_message_id IS NOT NULL",
        s=probes.plan["chaos_session"],
    )
    stored: dict[str, list[int]] = {}
    for row in rows:
        stored.setdefault(row["cmid"], []).append(int(row["id"]))
    problems = [
        f"chat: message {c} answered 201 as {i} but stored as {stored.get(c)}"
        for c, i in probes.sent.items()
        if stored.get(c) != [i]
    ]
    probes.checks.ran["chat_exactly_once"] = len(probes.sent)
    return problems


def heartbeats_persisted(ctx: Any, probes: Probes, mirror_interval: float) -> list[str]:
    """After the final mirror pass Postgres holds a ping no older than the last one answered
    more than one mirror interval before the end (younger ones may sit in the mirror)."""
    settled = [at for when, at in probes.beats if when < time.time() - mirror_interval]
    probes.checks.ran["heartbeat_persisted"] = len(settled)
    if not settled:
        return []
    stored = ctx.db.scalar(
        "SELECT greatest(m.last_heartbeat_at, p.at) FROM mitras m LEFT JOIN mitra_pings p ON p.mitra_id = m.id"
        " WHERE m.id = CAST(:m AS uuid)",
        m=probes.plan["chaos_mitra_id"],
    )
    wanted = datetime.fromisoformat(settled[-1])
    if stored is None or stored < wanted:
        return [f"heartbeat: Postgres has {stored}, older than the answered ping {wanted}"]
    return []


def recovery(faults: Faults, probes: Probes) -> None:
    """For each fault, seconds from its end until every probe kind succeeded again."""
    for window in faults.windows:
        for kind, times in probes.successes.items():
            after = [t for t in times if t >= window.ended]
            if after:
                window.recovered[kind] = round(after[0] - window.ended, 2)


def server_5xx(logs: list[Path]) -> list[tuple[float, str]]:
    """(time, line) of every access line with a 5xx status in the servers' JSON logs."""
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            status = entry.get("status") or (entry.get("httpRequest") or {}).get("status")
            if isinstance(status, int) and status >= 500:
                at = datetime.fromisoformat(entry["time"]).timestamp()
                found.append((at, f"{log.name}: {line[:500]}"))
    return found


def pause(pid: int) -> None:
    """SIGSTOP `pid` for PAUSE_SECONDS, then SIGCONT."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_SECONDS)
    finally:
        os.kill(pid, signal.SIGCONT)
