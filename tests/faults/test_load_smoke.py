"""The load test in the suite: 20 s of mixed traffic (bench.load) on two server processes.

100 mitras and 20 customers (the full 1,000 / 100 is `make load`) against one Postgres and
one Valkey of the run's own, with the sweeps firing meanwhile. Run as a subprocess: locust's
gevent patches must never reach the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.timeout(900)
def test_twenty_seconds_of_load_on_two_servers_have_no_error_and_break_no_invariant(tmp_path: Path) -> None:
    summary = tmp_path / "load.json"
    args = ["--seconds", "20", "--mitras", "100", "--customers", "20", "--staff", "2", "--summary", str(summary)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.load", *args],
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
    out = json.loads(summary.read_text())

    assert out["errors"] == 0, report
    assert out["failures"] == [], report
    assert out["server_errors"] == [], report
    assert out["sweep_failures"] == [], report
    assert out["violations"] == [], report
    assert proc.returncode == 0, report

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
