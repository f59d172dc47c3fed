"""Two parallel test runs at once on one machine both pass; a killed run leaves no server behind.

`make test-concurrent` (not part of `make test`: it runs the suite's own runner three times):

1. Two runs of `pytest -n 2 --dist loadgroup` (as `make test` runs it) start at the same moment
   on a subset that starts each worker's Postgres and Valkey, clones and resets isolated
   databases and kills servers of its own. Both share one pytest temp root, as two runs of one
   user do (each makes it 0700 again and rotates old runs away); both must pass.
2. A third run is killed with SIGKILL (nothing of it can clean up) once its workers' servers
   are up; within 30 s no `postgres` or `valkey-server` it started may still run
   (`infra.embedded`: the servers get a parent-death signal), and the data directories it left
   are removed by the next run (`infra.embedded.private_root`).

The temp root is a directory of this script's own (PYTEST_DEBUG_TEMPROOT), so it never
disturbs a run of someone else on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUBSET = [
    "tests/integration/test_isolated_db.py",
    "tests/integration/test_db_pool.py",
    "tests/integration/test_embedded_servers.py",
    "tests/functions/test_heartbeat_routes.py",
]
KILLED_SUBSET = ["tests/integration"]
SERVERS = ("postgres", "valkey-server")


def _pytest(args: list[str], temproot: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTEST_DEBUG_TEMPROOT": str(temproot)}
    argv = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace").replace("\0", " ")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _servers_of(pid: int) -> dict[int, str]:
    """The postgres postmasters and valkey-servers below `pid`, with their command lines."""
    found = {}
    for child in _descendants(pid):
        command = _command(child)
        exe = command.split(" ", 1)[0].rsplit("/", 1)[-1]
        if exe in SERVERS:
            found[child] = command
    return found


def two_runs_at_once(temproot: Path) -> bool:
    runs = [_pytest(SUBSET, temproot) for _ in range(2)]
    ok = True
    for n, run in enumerate(runs, 1):
        output, _ = run.communicate(timeout=1200)
        tail = output.strip().splitlines()[-1] if output.strip() else "(no output)"
        print(f"run {n}: exit {run.returncode}: {tail}")
        if run.returncode != 0:
            print(output[-4000:])
            ok = False
    return ok


def killed_run_leaves_nothing(temproot: Path) -> bool:
    run = _pytest(KILLED_SUBSET, temproot)
    deadline = time.monotonic() + 600
    servers: dict[int, str] = {}
    while time.monotonic() < deadline and run.poll() is None:
        servers = _servers_of(run.pid)
        kinds = {command.split(" ", 1)[0].rsplit("/", 1)[-1] for command in servers.values()}
        if len(servers) >= 4 and kinds == set(SERVERS):  # both workers' Postgres and Valkey
            break
        time.sleep(0.1)
    if run.poll() is not None or not servers:
        print("the run to kill ended before its servers were up")
        return False
    print(f"killing run {run.pid} (SIGKILL) with {len(servers)} servers up: {sorted(servers)}")
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(pid) for pid in servers):
        time.sleep(0.2)
    left = {pid: command for pid, command in servers.items() if _running(pid)}
    for pid, command in left.items():
        print(f"LEFT RUNNING: {pid} {command[:200]}")
        os.kill(pid, signal.SIGKILL)
    if not left:
        print("no postgres or valkey-server of the killed run is left")
    return not left


def main() -> int:
    temproot = Path(tempfile.mkdtemp(prefix="bestie-concurrent-"))
    try:
        started = time.monotonic()
        both = two_runs_at_once(temproot)
        print(f"two runs at once: {'both passed' if both else 'FAILED'} ({time.monotonic() - started:.0f} s)")
        clean = killed_run_leaves_nothing(temproot)
    finally:
        shutil.rmtree(temproot, ignore_errors=True)
    return 0 if both and clean else 1


if __name__ == "__main__":
    sys.exit(main())
