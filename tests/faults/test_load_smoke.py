"""The load tests in the suite: 20 s of mixed traffic (bench.load) on two server processes, and 30 s with faults.

100 mitras and 20 customers (the full 1,000 / 100 is `make load`) against one Postgres and
one Valkey of the run's own, with the sweeps firing meanwhile. Run as a subprocess: locust's
gevent patches must never reach the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


def run_load(tmp_path: Path, *extra: str, seconds: int = 20) -> tuple[dict, str, int]:
    """Run bench.load as a subprocess; return its summary, the tail of its output, its exit code."""
    summary = tmp_path / "load.json"
    args = [
        "--seconds",
        str(seconds),
        "--mitras",
        "100",
        "--customers",
        "20",
        "--staff",
        "2",
        "--summary",
        str(summary),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load", *args, *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = proc.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the runner stops its servers, locust and databases on SIGTERM
        output, _ = proc.communicate(timeout=120)
        pytest.fail(f"the load run did not finish in 840 s\n{output[-6000:]}")
    report = output[-6000:]
    assert summary.exists(), report
    return json.loads(summary.read_text()), report, proc.returncode


def assert_no_server_left(out: dict) -> None:
    """Every server process group the run started (restarts and the idle chaos server too) is gone."""
    assert out["server_pids"], "the run reported no server process"
    for pid in out["server_pids"]:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


@pytest.mark.timeout(900)
def test_twenty_seconds_of_load_on_two_servers_have_no_error_and_break_no_invariant(tmp_path: Path) -> None:
    out, report, returncode = run_load(tmp_path)
    assert_no_server_left(out)

    assert out["errors"] == 0, report
    assert out["failures"] == [], report
    assert out["server_errors"] == [], report
    assert out["sweep_failures"] == [], report
    assert out["violations"] == [], report
    assert returncode == 0, report

    # The scenario really ran: mitras pinged and accepted, sessions were paid, chatted in and ended,
    # the control center read, and every sweep ran at least once against the traffic.
    requests = {r["route"]: r["requests"] for r in out["routes"]}
    for route in (
        "POST /api/mitra/status/heartbeat",
        "POST /api/mitra/chat-sessions/:id/accept",
        "POST /internal/chat-sessions/:id/payment-confirmed",
        "POST /api/client/chat-sessions/:id/messages",
        "POST /api/mitra/chat-sessions/:id/messages",
        "GET /internal/dashboard",
    ):
        assert requests.get(route, 0) > 0, f"{route} never ran\n{report}"
    assert out["sessions"].get("ended", 0) > 0, report
    assert out["messages"] > 0, report
    assert all(n > 0 for n in out["sweeps"].values()), out["sweeps"]


@pytest.mark.timeout(900)
def test_thirty_seconds_of_load_through_four_faults_break_no_invariant_and_every_check_ran(tmp_path: Path) -> None:
    """make load CHAOS=1, shortened: Valkey killed empty and paused, Postgres restarted, a server killed."""
    out, report, returncode = run_load(tmp_path, "--chaos", seconds=30)
    assert_no_server_left(out)

    assert out["violations"] == [], report
    assert returncode == 0, report
    assert [f["name"] for f in out["faults"]] == [
        "valkey_killed_empty",
        "valkey_paused",
        "postgres_restarted",
        "server_killed",
    ], report
    checks = {
        "revocation",
        "chat_order",
        "chat_exactly_once",
        "heartbeat_monotonic",
        "heartbeat_persisted",
        "invariants",
    }
    assert checks <= {k for k, n in out["checks"].items() if n > 0}, out["checks"]
