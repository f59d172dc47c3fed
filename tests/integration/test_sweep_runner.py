"""The sweep runner: passes per invocation, Scheduler retries, overlapping instances, budget."""

import threading
import time

import pytest

from shared.sweeps.runner import Sweep, invoke


class FakeTimer:
    """Monotonic time that moves only when the runner sleeps (or a pass says it took time)."""

    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.t

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.t += seconds


def counting_sweep(cadence, calls, name="test-sweep"):
    def run_pass(ctx, _lock_tx):
        calls.append(ctx.now())
        return {"touched": 2, "breaker_open": False}

    return Sweep(name, cadence, run_pass)


def test_sub_minute_cadence_runs_several_passes_spaced_by_the_cadence(isolated_ctx):
    calls, timer = [], FakeTimer()
    result = invoke(
        isolated_ctx,
        counting_sweep(20, calls),
        schedule_time=None,
        budget_seconds=110,
        sleep=timer.sleep,
        monotonic=timer.monotonic,
    )
    assert result == {"ran": True, "passes": 3, "skipped_locked": 0, "touched": 6, "breaker_open": False}
    assert timer.sleeps == [20, 20]


def test_minute_or_longer_cadence_runs_one_pass(isolated_ctx):
    calls, timer = [], FakeTimer()
    result = invoke(
        isolated_ctx,
        counting_sweep(300, calls),
        schedule_time=None,
        budget_seconds=50,
        sleep=timer.sleep,
        monotonic=timer.monotonic,
    )
    assert result["passes"] == 1 and timer.sleeps == []


def test_passes_that_would_overrun_the_budget_are_not_started(isolated_ctx):
    calls, timer = [], FakeTimer()
    result = invoke(
        isolated_ctx,
        counting_sweep(30, calls),
        schedule_time=None,
        budget_seconds=25,
        sleep=timer.sleep,
        monotonic=timer.monotonic,
    )
    assert result["passes"] == 1 and len(calls) == 1


def test_a_retried_delivery_of_the_same_schedule_time_does_the_work_once(isolated_ctx):
    calls, timer = [], FakeTimer()
    sweep = counting_sweep(60, calls)
    first = invoke(
        isolated_ctx,
        sweep,
        schedule_time="2026-11-28T10:00:00Z",
        budget_seconds=50,
        sleep=timer.sleep,
        monotonic=timer.monotonic,
    )
    again = invoke(
        isolated_ctx,
        sweep,
        schedule_time="2026-11-28T10:00:00Z",
        budget_seconds=50,
        sleep=timer.sleep,
        monotonic=timer.monotonic,
    )
    assert first["ran"] is True and again == {"ran": False, "passes": 0, "reason": "duplicate_delivery"}
    assert len(calls) == 1
    assert isolated_ctx.db.scalar("SELECT result->>'passes' FROM sweep_runs WHERE sweep = 'test-sweep'") == "1"


def test_a_retry_after_a_failed_run_does_the_work(isolated_ctx):
    attempts = []

    def flaky(ctx, _lock_tx):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")
        return {"done": 1}

    sweep = Sweep("flaky", 60, flaky)
    with pytest.raises(RuntimeError):
        invoke(isolated_ctx, sweep, schedule_time="t1", budget_seconds=50)
    assert invoke(isolated_ctx, sweep, schedule_time="t1", budget_seconds=50)["done"] == 1
    assert isolated_ctx.db.scalar("SELECT attempts FROM sweep_runs WHERE sweep = 'flaky'") == 2


def test_overlapping_invocations_never_run_passes_at_the_same_time(isolated_ctx):
    inside, peak, lock = [0], [0], threading.Lock()

    def slow(ctx, _lock_tx):
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.2)
        with lock:
            inside[0] -= 1
        return {"n": 1}

    sweep = Sweep("overlap", 60, slow)
    results = []
    barrier = threading.Barrier(3)

    def run(i):
        barrier.wait()
        results.append(invoke(isolated_ctx, sweep, schedule_time=f"s{i}", budget_seconds=50))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    assert sum(r["passes"] for r in results) + sum(r["skipped_locked"] for r in results) == 3
    assert sum(r["passes"] for r in results) >= 1
