"""`make bench`: the performance report (bench.report: every goal figure at 1k / 10k / 100k
online, docs/bench.png, the table of docs/bench.md). Each module also runs alone:
`.venv/bin/python -m bench.<name>` (mirror, paths, heartbeat_throughput, coldstart,
auth_refresh_vs_login, long_poll)."""

from __future__ import annotations

import sys

from bench import report

if __name__ == "__main__":
    sys.exit(report.main(sys.argv[1:]))
