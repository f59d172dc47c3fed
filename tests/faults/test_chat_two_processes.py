"""Done-when 1 of the chat: two separately started server processes, real HTTP, real Postgres and Valkey.

One party long-polls on one process while the other sends through the other; the wake-up
crosses processes through Valkey pub/sub. The latency is measured here because it is the
requirement itself (under 1 s); throughput and percentiles belong to bench/.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from shared.context import AppContext
from tests.chat_support import Pair, active_session
from tests.pairing_support import api, customer
from tests.server_process import server

ROUNDS = 3


@pytest.fixture
def two_servers(isolated_ctx: AppContext) -> Iterator[tuple[str, str]]:
    with server(isolated_ctx) as first, server(isolated_ctx) as second:
        yield first, second


def _url(base: str, side: str, pair: Pair, tail: str = "messages") -> str:
    return f"{base}/api/{side}/chat-sessions/{pair.session_id}/{tail}"


def _send(base: str, side: str, pair: Pair, body: str, cmid: str | None = None) -> requests.Response:
    payload = {"client_message_id": cmid or str(uuid.uuid4()), "body": body}
    return requests.post(_url(base, side, pair), json=payload, headers=pair.auth(side), timeout=10)


def _receive(base: str, side: str, pair: Pair, after: int, wait: int = 0) -> requests.Response:
    params = {"after": after, "wait": wait}
    return requests.get(_url(base, side, pair), params=params, headers=pair.auth(side), timeout=wait + 10)


def _last_id(base: str, pair: Pair) -> int:
    return int(_receive(base, "client", pair, 0).json()["next_after"])


def _one_round(waiter_base: str, waiter: str, sender_base: str, sender: str, pair: Pair) -> float:
    """Seconds from the start of the send to the waiting reader's answer with that message."""
    after = _last_id(waiter_base, pair)
    result: dict[str, Any] = {}

    def wait() -> None:
        resp = _receive(waiter_base, waiter, pair, after, wait=20)
        result["at"], result["body"] = time.monotonic(), resp.json()

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.7)  # the reader is waiting by now (it asked for up to 20 s)
    assert thread.is_alive(), "the reader answered before anything was sent"
    started = time.monotonic()
    sent = _send(sender_base, sender, pair, f"{sender} says hi")
    assert sent.status_code == 201, sent.text
    thread.join(timeout=25)
    assert [m["id"] for m in result["body"]["messages"]] == [sent.json()["id"]]
    return float(result["at"] - started)


def test_a_waiting_reader_gets_a_message_sent_on_another_process_in_under_a_second(
    isolated_ctx: AppContext, two_servers: tuple[str, str]
) -> None:
    first, second = two_servers
    pair = active_session(isolated_ctx)
    latencies = []
    for _ in range(ROUNDS):
        latencies.append(_one_round(first, "client", second, "mitra", pair))
        latencies.append(_one_round(second, "mitra", first, "client", pair))
    print(f"wake latencies across processes (s): {[round(x, 3) for x in latencies]}")
    assert max(latencies) < 1.0, latencies


def test_retry_third_party_not_active_and_history_across_processes(
    isolated_ctx: AppContext, two_servers: tuple[str, str]
) -> None:
    first, second = two_servers
    pair = active_session(isolated_ctx)
    cmid = str(uuid.uuid4())
    created = _send(first, "client", pair, "hello", cmid)
    retried = _send(second, "client", pair, "hello", cmid)
    assert (created.status_code, retried.status_code) == (201, 200)
    assert retried.json() == created.json()

    _, stranger = customer(isolated_ctx)
    outsider = Pair(pair.session_id, "", stranger, "", active_session(isolated_ctx).mitra)
    for side in ("client", "mitra"):
        assert _send(second, side, outsider, "let me in").status_code == 404
        assert _receive(first, side, outsider, 0).status_code == 404

    assert api("end", pair.customer, pair.session_id).status_code == 200
    refused = _send(second, "mitra", pair, "still there?")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "SESSION_NOT_ACTIVE")
    for base, side in ((first, "client"), (second, "mitra")):
        history = _receive(base, side, pair, 0).json()
        assert history["session_status"] == "ended"
        assert [m["body"] for m in history["messages"] if m["sender_type"] == "customer"] == ["hello"]


def test_a_read_marker_posted_on_one_process_wakes_a_wait_on_the_other(
    isolated_ctx: AppContext, two_servers: tuple[str, str]
) -> None:
    first, second = two_servers
    pair = active_session(isolated_ctx)
    sent = _send(first, "client", pair, "seen?").json()
    result: dict[str, Any] = {}

    def wait() -> None:
        resp = _receive(first, "client", pair, sent["id"], wait=20)
        result["at"], result["body"] = time.monotonic(), resp.json()

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.7)
    assert thread.is_alive(), "the reader answered before the marker moved"
    started = time.monotonic()
    marked = requests.post(
        _url(second, "mitra", pair, "messages/read"), json={"up_to": sent["id"]}, headers=pair.mitra, timeout=10
    )
    assert marked.status_code == 200, marked.text
    thread.join(timeout=25)
    assert result["body"]["messages"] == [] and result["body"]["peer_last_read_id"] == sent["id"]
    assert result["at"] - started < 1.0
