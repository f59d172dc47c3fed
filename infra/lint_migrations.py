"""Lint every migration after the baseline with squawk, the way the runner will apply it.

`make lint` runs this. Files up to BASELINE were applied before the runner gave each file its
own lock_timeout and were linted by hand then; they cannot change (the runner refuses a file
whose checksum moved), so they are not linted again. Every later file must pass with no
finding, except the two rules the runner satisfies for every file itself:
`require-lock-timeout` and `require-statement-timeout` (infra/migrate.py sets both before a
file runs). A transactional file is linted inside BEGIN/COMMIT, as the runner applies it; a
`-- migrate: no-transaction` file as it stands. docs/migrations.md has the rules.

    python -m infra.lint_migrations [DIR]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from infra import migrate

BASELINE = "0010"
SET_BY_THE_RUNNER = ("require-lock-timeout", "require-statement-timeout")
PG_VERSION = "15"  # the oldest server the project claims (make test-compat)


def pending_lint(directory: Path = migrate.MIGRATIONS_DIR) -> list[migrate.Migration]:
    """The migrations after the baseline, the ones squawk must pass."""
    return [m for m in migrate.discover(directory) if m.version[:4] > BASELINE]


def lint(directory: Path = migrate.MIGRATIONS_DIR) -> tuple[int, str]:
    """Run squawk on each file after the baseline; return (exit status, report)."""
    squawk = shutil.which("squawk", path=str(Path(sys.executable).parent)) or shutil.which("squawk")
    if squawk is None:
        return 2, "squawk not found: pip install squawk-cli (requirements-dev.txt)"
    status, report = 0, []
    for migration in pending_lint(directory):
        path = directory / f"{migration.version}.sql"
        argv = [squawk, "--stdin-filepath", str(path), "--reporter", "gcc", "--pg-version", PG_VERSION]
        argv += ["--exclude", ",".join(SET_BY_THE_RUNNER)]
        # squawk sees the file as the runner runs it: a transactional file inside BEGIN/COMMIT
        # (so a CONCURRENTLY in it is flagged; line numbers then read one too high).
        sql = f"BEGIN;\n{migration.sql}\nCOMMIT;\n" if migration.transactional else migration.sql
        done = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False)
        if done.returncode:
            status = 1
            report.append(done.stdout + done.stderr)
    return status, "".join(report)


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else migrate.MIGRATIONS_DIR
    status, report = lint(directory)
    print(report or f"squawk: {len(pending_lint(directory))} migration(s) after {BASELINE}, no findings", end="\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
