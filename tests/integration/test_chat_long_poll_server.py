"""Long polls under functions-framework's production server, with the deployed settings.

The receive functions run as `functions-framework --target ...` runs them on Cloud Run (the
deploy plan's environment, THREADS included), not under the dev server: one caller's many
waits must neither occupy the instance nor slow anyone else's read, and waiting callers are
answered as soon as the instance is told to stop (docs/chat.md, "Bounded waiting").
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from shared.config import Settings
from shared.context import AppContext
from tests.support.chat_support import Pair, active_session, send
from tests.support.server_process import function_process, function_server

FLOOD = 85  # more than the 80 request threads the threaded deploy gave an instance
MAX_WAITS_PER_CALLER = Settings().chat_max_waits_per_caller
SIDES = {"client": "chat_client_messages", "mitra": "chat_mitra_messages"}


def _url(base: str, side: str, pair: Pair) -> str:
    return f"{base}/api/{side}/chat-sessions/{pair.session_id}/messages"


def _at_once(n: int, call: Callable[[], Any]) -> list[Any]:
    """`n` calls started together (a barrier), their results in order."""
    barrier = threading.Barrier(n)

    def one(_: int) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


# A read queued behind the held waits would take their whole `wait` (counted as 3 s below);
# one served beside them takes milliseconds on an idle machine and can take a few hundred
# on a busy one. The bound separates the two without measuring the machine (speed is the
# benchmarks' business: bench.long_poll).
STUCK_BOUND_SECONDS = 1.0


def _read_seconds(url: str, headers: dict[str, str]) -> float:
    """Median time of five ordinary (`wait=0`) reads; a read stuck behind the waits counts as 3 s."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        try:
            resp = requests.get(url, headers=headers, params={"wait": 0}, timeout=3)
            assert resp.status_code == 200, resp.text
            times.append(time.perf_counter() - started)
        except requests.Timeout:
            times.append(3.0)
    return statistics.median(times)


@pytest.mark.parametrize("side", sorted(SIDES))
def test_one_callers_flood_of_waits_leaves_another_callers_read_fast(isolated_ctx: AppContext, side: str) -> None:
    attacker, victim = active_session(isolated_ctx), active_session(isolated_ctx)
    with function_server(isolated_ctx, SIDES[side]) as base:
        first = requests.get(_url(base, side, attacker), headers=attacker.auth(side), timeout=5)
        assert first.status_code == 200, first.text
        after = first.json()["next_after"]
        answers: list[Any] = []

        def flood() -> None:
            answers.extend(
                _at_once(
                    FLOOD,
                    lambda: requests.get(
                        _url(base, side, attacker),
                        headers=attacker.auth(side),
                        params={"after": after, "wait": 25},
                        timeout=40,
                    ),
                )
            )

        flooding = threading.Thread(target=flood)
        flooding.start()
        time.sleep(2)  # the waits are in
        seconds = _read_seconds(_url(base, side, victim), victim.auth(side))
        peer = "mitra" if side == "client" else "client"
        assert send(peer, attacker.auth(peer), attacker.session_id, "wakes the held waits").status_code == 201
        flooding.join(timeout=45)
    print(f"{side}: another caller's read took {seconds * 1000:.1f} ms under {FLOOD} waits of one caller")
    assert seconds < STUCK_BOUND_SECONDS
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * MAX_WAITS_PER_CALLER + [429] * (FLOOD - MAX_WAITS_PER_CALLER)
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "TOO_MANY_WAITS" and refused.headers["Retry-After"]
    woken = [a.json() for a in answers if a.status_code == 200]
    assert all(len(body["messages"]) == 1 for body in woken)  # the capped waits were held, then woken


def test_waits_of_many_callers_beyond_the_thread_count_leave_a_read_fast(isolated_ctx: AppContext) -> None:
    callers = [active_session(isolated_ctx) for _ in range(-(-FLOOD // MAX_WAITS_PER_CALLER))]
    victim = active_session(isolated_ctx)
    with function_server(isolated_ctx, SIDES["client"]) as base:
        pending = [
            (pair, requests.get(_url(base, "client", pair), headers=pair.customer, timeout=5).json()["next_after"])
            for pair in callers
        ]
        waits = [(pair, after) for pair, after in pending for _ in range(MAX_WAITS_PER_CALLER)]
        answers: list[Any] = []
        index = iter(range(len(waits)))
        lock = threading.Lock()

        def one() -> Any:
            with lock:
                pair, after = waits[next(index)]
            return requests.get(
                _url(base, "client", pair), headers=pair.customer, params={"after": after, "wait": 8}, timeout=30
            )

        flooding = threading.Thread(target=lambda: answers.extend(_at_once(len(waits), one)))
        flooding.start()
        time.sleep(2)
        seconds = _read_seconds(_url(base, "client", victim), victim.customer)
        flooding.join(timeout=40)
    print(f"another caller's read took {seconds * 1000:.1f} ms under {len(waits)} waits of {len(callers)} callers")
    assert seconds < STUCK_BOUND_SECONDS
    assert [a.status_code for a in answers] == [200] * len(waits)  # every wait was held to its end


def test_stopping_the_instance_answers_its_waits_at_once(isolated_ctx: AppContext) -> None:
    pair = active_session(isolated_ctx)
    with function_server(isolated_ctx, SIDES["client"]) as base:
        after = requests.get(_url(base, "client", pair), headers=pair.customer, timeout=5).json()["next_after"]
        answered: list[tuple[float, int]] = []

        def wait() -> None:
            resp = requests.get(
                _url(base, "client", pair), headers=pair.customer, params={"after": after, "wait": 25}, timeout=40
            )
            answered.append((time.monotonic(), resp.status_code))

        waiters = [threading.Thread(target=wait) for _ in range(MAX_WAITS_PER_CALLER)]
        for waiter in waiters:
            waiter.start()
        time.sleep(2)
        assert not answered  # held
        stopped = time.monotonic()
        function_process(base).send_signal(signal.SIGTERM)  # what Cloud Run sends 10 s before it kills
        for waiter in waiters:
            waiter.join(timeout=30)
    assert [status for _, status in answered] == [200] * MAX_WAITS_PER_CALLER
    assert max(at for at, _ in answered) - stopped < 5  # well inside Cloud Run's 10 s, not the 25 s wait
