"""The load test's users (locust), run only inside the locust process started by bench.load.

Never imported by the driver or the tests: locust patches the standard library with gevent
on import. Everything it needs arrives in the JSON plan named by LOAD_PLAN (written by
bench.load.runner): the two server URLs, one token per mitra and customer, a control-center
token, the pacing.

- MitraUser (one per seeded mitra): goes online, heartbeats every `heartbeat_seconds`, polls
  its offers every `offer_poll_seconds` and accepts one (sometimes declines), chats in the
  session it holds until the session is over (sometimes ends it itself), and now and then goes
  offline for a few seconds and online again.
- CustomerUser (one per seeded customer): reads the beacon, requests a session, waits for an
  accept (cancels when nobody accepts in time), has the payment confirmed (the control
  center's payment webhook stand-in), extends sometimes, chats, ends; then again.
- StaffUser: control-center reads (dashboard, mitra / customer / session lists, one mitra).

Every request is checked with catch_response: success is 2xx or an answer the scenario
expects as part of the business (`EXPECTED`: another mitra accepted first, nobody available,
the other party ended the session first, ...). Any other status, any 5xx and any connection
error is a failure, named after the route template so the stats group per route.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

PLAN: dict[str, Any] = json.loads(Path(os.environ["LOAD_PLAN"]).read_text())
HOSTS: list[str] = PLAN["hosts"]
PACE: dict[str, float] = PLAN["pace"]

# The kind of a request -> the 409 (and 429) codes that are part of the business there, not failures.
BUSINESS_409 = {"INVALID_TRANSITION", "SESSION_EXPIRED"}
EXPECTED: dict[str, set[str]] = {
    "accept": {"ALREADY_TAKEN", "OFFER_CLOSED", "AT_CAPACITY", "OFFER_DECLINED", *BUSINESS_409},
    "decline": {"OFFER_CLOSED", "ALREADY_TAKEN", *BUSINESS_409},
    # A request right after the customer's own cancel waits out the cooldown (429), as the app does.
    "request": {"NO_MITRA_AVAILABLE", "SESSION_ALREADY_OPEN", "CANCEL_COOLDOWN"},
    "cancel": BUSINESS_409,
    "pay": {"PAYMENT_DEADLINE_PASSED", *BUSINESS_409},
    "extend": BUSINESS_409,
    "end": BUSINESS_409,
    "send": {"SESSION_NOT_ACTIVE"},
}

_next_host = itertools.count()
BUSINESS: collections.Counter[str] = collections.Counter()  # "route code" -> expected 409s answered


@events.quitting.add_listener
def _write_business_answers(**_: Any) -> None:
    Path(PLAN["business_out"]).write_text(json.dumps(dict(BUSINESS)))


class ApiUser(FastHttpUser):
    """A user on one of the two servers (alternating), with checked JSON calls."""

    abstract = True
    network_timeout = 60.0
    connection_timeout = 30.0
    token = ""

    def __init__(self, environment: Any) -> None:
        self.host = HOSTS[next(_next_host) % len(HOSTS)]
        super().__init__(environment)

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        kind: str = "",
        body: Any = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of one request; records success / failure as described above.

        Returns status 0 for a failure the scenario cannot continue from.
        """
        headers = {"Authorization": f"Bearer {token or self.token}"}
        with self.client.request(method, path, name=name, json=body, headers=headers, catch_response=True) as resp:
            status = resp.status_code or 0
            try:
                data = resp.json() if resp.content else {}
            except ValueError:
                data = {}
            if 200 <= status < 300:
                resp.success()
                return status, data
            code = (data.get("error") or {}).get("code", "") if isinstance(data, dict) else ""
            if status in (409, 429) and code in EXPECTED.get(kind, set()):
                BUSINESS[f"{name} {code}"] += 1
                resp.success()
                return status, data
            resp.failure(f"{status} {code or (resp.error and type(resp.error).__name__) or 'no body'}")
            return 0, data


_mitras = iter(PLAN["mitras"])
_customers = iter(PLAN["customers"])


class MitraUser(ApiUser):
    fixed_count = len(PLAN["mitras"])
    wait_time = constant(1)

    def on_start(self) -> None:
        try:
            me = next(_mitras)
        except StopIteration:
            raise StopUser() from None
        self.token, self.id = me["token"], me["id"]
        self.online = False
        self.session: str | None = None
        self.cursor = 0
        self.replied = 0
        self.next_heartbeat = time.monotonic() + random.uniform(0, PACE["heartbeat_seconds"])
        self.next_offers = time.monotonic() + random.uniform(0, PACE["offer_poll_seconds"])
        self.offline_until = 0.0
        self.go_online()

    def go_online(self) -> None:
        status, _ = self.call("POST", "/api/mitra/status/online", "POST /api/mitra/status/online")
        self.online = status == 200

    @task
    def tick(self) -> None:
        now = time.monotonic()
        if not self.online:
            if now >= self.offline_until:
                self.go_online()
            return
        if now >= self.next_heartbeat:
            self.call("POST", "/api/mitra/status/heartbeat", "POST /api/mitra/status/heartbeat")
            self.next_heartbeat = now + PACE["heartbeat_seconds"]
        if self.session:
            self.chat()
        elif now >= self.next_offers:
            self.next_offers = now + PACE["offer_poll_seconds"]
            self.answer_offers()
        elif random.random() < PACE["offline_chance"]:
            self.call("POST", "/api/mitra/status/offline", "POST /api/mitra/status/offline")
            self.online = False
            self.offline_until = now + random.uniform(3, 8)

    def answer_offers(self) -> None:
        status, page = self.call(
            "GET", "/api/mitra/chat-sessions?view=offers&limit=5", "GET /api/mitra/chat-sessions?view=offers"
        )
        offers = page.get("sessions", []) if status == 200 else []
        if not offers:
            return
        sid = offers[0]["id"]
        if random.random() < PACE["decline_chance"]:
            self.call(
                "POST",
                f"/api/mitra/chat-sessions/{sid}/decline",
                "POST /api/mitra/chat-sessions/:id/decline",
                kind="decline",
            )
            return
        status, _ = self.call(
            "POST", f"/api/mitra/chat-sessions/{sid}/accept", "POST /api/mitra/chat-sessions/:id/accept", kind="accept"
        )
        if status == 200:
            self.session, self.cursor, self.replied = sid, 0, 0

    def chat(self) -> None:
        sid = self.session
        status, page = self.call(
            "GET",
            f"/api/mitra/chat-sessions/{sid}/messages?after={self.cursor}&limit=50",
            "GET /api/mitra/chat-sessions/:id/messages",
        )
        if status != 200:
            self.session = None
            return
        messages = page.get("messages", [])
        self.cursor = page.get("next_after") or self.cursor
        state = page.get("session_status")
        if state not in ("pending_payment", "active"):
            self.session = None
            return
        if messages:
            self.call(
                "POST",
                f"/api/mitra/chat-sessions/{sid}/messages/read",
                "POST /api/mitra/chat-sessions/:id/messages/read",
                body={"up_to": messages[-1]["id"]},
            )
        if state != "active":
            return
        if any(m["sender_type"] == "customer" for m in messages):
            self.replied += 1
            self.call(
                "POST",
                f"/api/mitra/chat-sessions/{sid}/messages",
                "POST /api/mitra/chat-sessions/:id/messages",
                kind="send",
                body={"client_message_id": str(uuid.uuid4()), "body": f"reply {self.replied}"},
            )
        if self.replied >= 2 and random.random() < PACE["mitra_end_chance"]:
            self.call(
                "POST", f"/api/mitra/chat-sessions/{sid}/end", "POST /api/mitra/chat-sessions/:id/end", kind="end"
            )
            self.session = None


class CustomerUser(ApiUser):
    fixed_count = len(PLAN["customers"])
    wait_time = constant(0)

    def on_start(self) -> None:
        try:
            me = next(_customers)
        except StopIteration:
            raise StopUser() from None
        self.token, self.id = me["token"], me["id"]
        self.pause(random.uniform(0, 3))

    def pause(self, seconds: float) -> None:
        """A pause inside the task that ends the user when the run stops, as locust's own wait
        between tasks does: a stopping run then neither cuts a request short nor waits out the
        rest of a whole session (up to --stop-timeout, 10 s, on every run)."""
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_WAITING  # stop() kills a waiting user at once
        gevent.sleep(seconds)
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_RUNNING

    @task
    def one_session(self) -> None:
        self.call("GET", "/api/client/availability", "GET /api/client/availability")
        session = self.request()
        if session is None:
            self.pause(random.uniform(1, 3))
            return
        sid, state = session["id"], session["status"]
        state = self.await_accept(sid, state)
        if state == "pending_payment":
            status, body = self.call(
                "POST",
                f"/internal/chat-sessions/{sid}/payment-confirmed",
                "POST /internal/chat-sessions/:id/payment-confirmed",
                kind="pay",
                token=PLAN["cc_token"],
            )
            state = body.get("status", "") if status == 200 else self.status_of(sid)
        if state == "active":
            self.converse(sid)
            self.call(
                "POST", f"/api/client/chat-sessions/{sid}/end", "POST /api/client/chat-sessions/:id/end", kind="end"
            )
        self.pause(random.uniform(*PACE["customer_think_seconds"]))

    def request(self) -> dict[str, Any] | None:
        status, body = self.call(
            "POST",
            "/api/client/chat-sessions",
            "POST /api/client/chat-sessions",
            kind="request",
            body={"duration_minutes": 5},
        )
        if status == 201:
            return body
        code = (body.get("error") or {}).get("code")
        if code == "CANCEL_COOLDOWN":
            self.pause(float(body["error"].get("retry_after_seconds", 1)))
            return None
        if code == "SESSION_ALREADY_OPEN":
            status, page = self.call(
                "GET", "/api/client/chat-sessions?view=open", "GET /api/client/chat-sessions?view=open"
            )
            sessions = page.get("sessions", []) if status == 200 else []
            return sessions[0] if sessions else None
        return None

    def status_of(self, sid: str) -> str:
        status, body = self.call("GET", f"/api/client/chat-sessions/{sid}", "GET /api/client/chat-sessions/:id")
        return str(body.get("status", "")) if status == 200 else ""

    def await_accept(self, sid: str, state: str) -> str:
        deadline = time.monotonic() + PACE["search_patience_seconds"]
        while state == "searching" and time.monotonic() < deadline:
            self.pause(1)
            state = self.status_of(sid)
        if state == "searching":
            status, body = self.call(
                "POST",
                f"/api/client/chat-sessions/{sid}/cancel",
                "POST /api/client/chat-sessions/:id/cancel",
                kind="cancel",
            )
            state = body.get("status", "") if status == 200 else self.status_of(sid)
        return state

    def converse(self, sid: str) -> None:
        if random.random() < 0.5:
            self.call(
                "POST",
                f"/api/client/chat-sessions/{sid}/extend",
                "POST /api/client/chat-sessions/:id/extend",
                kind="extend",
                body={"minutes": 1},
            )
        cursor = 0
        for i in range(PACE["messages_per_session"]):
            status, _ = self.call(
                "POST",
                f"/api/client/chat-sessions/{sid}/messages",
                "POST /api/client/chat-sessions/:id/messages",
                kind="send",
                body={"client_message_id": str(uuid.uuid4()), "body": f"hello {i}"},
            )
            if status != 201:
                return
            status, page = self.call(
                "GET",
                f"/api/client/chat-sessions/{sid}/messages?after={cursor}&wait={PACE['wait_seconds']}",
                "GET /api/client/chat-sessions/:id/messages",
            )
            if status != 200:
                return
            cursor = page.get("next_after") or cursor
            if page.get("messages"):
                self.call(
                    "POST",
                    f"/api/client/chat-sessions/{sid}/messages/read",
                    "POST /api/client/chat-sessions/:id/messages/read",
                    body={"up_to": cursor},
                )
            if page.get("session_status") != "active":
                return
            self.pause(random.uniform(1.0, 2.0))


class StaffUser(ApiUser):
    fixed_count = int(PLAN["staff"])
    wait_time = constant(1)

    def on_start(self) -> None:
        self.token = PLAN["cc_token"]
        self.mitra_ids = [m["id"] for m in PLAN["mitras"]]

    @task(3)
    def dashboard(self) -> None:
        self.call("GET", "/internal/dashboard", "GET /internal/dashboard")

    @task(2)
    def mitras(self) -> None:
        self.call("GET", "/internal/mitras?limit=50", "GET /internal/mitras")

    @task(2)
    def sessions(self) -> None:
        self.call("GET", "/internal/chat-sessions?limit=50", "GET /internal/chat-sessions")

    @task(1)
    def customers(self) -> None:
        self.call("GET", "/internal/customers?limit=50", "GET /internal/customers")

    @task(1)
    def one_mitra(self) -> None:
        self.call("GET", f"/internal/mitras/{random.choice(self.mitra_ids)}", "GET /internal/mitras/:id")
