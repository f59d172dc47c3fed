"""A run's embedded servers die with it and keep their data where no other run reaches it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from infra import embedded

REPO = Path(__file__).resolve().parents[2]

# A stand-in for a test run: starts both servers the way the fixtures do, then waits to be killed.
RUN = """
import sys, time
from pathlib import Path
from infra import embedded
root = Path(sys.argv[1])
pg = embedded.EmbeddedPostgres(root / "postgres").start()
vk = embedded.EmbeddedValkey(root / "valkey").start()
print(pg.proc.pid, vk.proc.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int, name: str) -> bool:
    """True while `pid` is a live (not zombie) process whose command line names `name`."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and name in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_run_leaves_no_postgres_or_valkey_running(sig: int) -> None:
    root = embedded.private_root("bestie-killed-run-")
    run = subprocess.Popen([sys.executable, "-c", RUN, str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    servers: list[tuple[int, str]] = []
    try:
        assert run.stdout is not None
        pg_pid, vk_pid = (int(p) for p in run.stdout.readline().split())
        servers = [(pg_pid, "postgres"), (vk_pid, "valkey")]
        assert all(_running(pid, name) for pid, name in servers)

        run.send_signal(sig)  # neither runs any cleanup code in the run
        run.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_running(pid, name) for pid, name in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [name for pid, name in servers if _running(pid, name)] == []
    finally:
        run.kill()
        run.wait()
        for pid, name in servers:
            if _running(pid, name):
                os.kill(pid, signal.SIGKILL)  # do not leak them when the assertion failed
        shutil.rmtree(root, ignore_errors=True)


def test_server_data_lives_outside_pytests_temp_root(data_root: Path, tmp_path_factory) -> None:
    # Every pytest run makes its user's temp root 0700 again and rotates old runs away; the
    # servers' data must be out of reach of that (an unprivileged Postgres would lose it).
    pytest_root = tmp_path_factory.getbasetemp().resolve()
    assert data_root.resolve().parent == Path(tempfile.gettempdir()).resolve()
    assert pytest_root not in data_root.resolve().parents
    assert (data_root / embedded.OWNER_FILE).read_text() == str(os.getpid())


def test_a_data_directory_left_by_a_dead_run_is_removed_by_the_next() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = embedded.private_root("bestie-left-behind-")
    (left / embedded.OWNER_FILE).write_text(dead.stdout.strip())  # a pid that no longer runs
    mine = embedded.private_root("bestie-left-behind-")
    try:
        assert not left.exists()
        assert mine.exists()
    finally:
        for path in (left, mine):
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
