"""`make mutants`: break each critical invariant in a copy of the repository and check a test notices.

The invariants and their code changes are data (tests/mutants.toml). Each mutant is applied on
its own to one scratch copy of the working tree, only its listed test files run, and the file
is restored before the next. On demand only, never in CI: it runs test files once per mutant.

    python -m tests.support.mutants [--no-baseline] [name ...]

Before the mutants, the union of their test files runs once unmutated, so a failure can be
blamed on the mutant. A mutant is `caught` when its tests fail (pytest exit 1), `SURVIVED` when
they pass, `stale` when its `find` text no longer occurs exactly once (the code moved: update
the entry), and `error` for any other pytest outcome (collection or usage errors). The exit
status is 0 only when every mutant was caught.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "mutants.toml"
TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Mutant:
    name: str
    invariant: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]


def load(path: Path = SPEC) -> list[Mutant]:
    raw = tomllib.loads(path.read_text())["mutant"]
    return [Mutant(**{**m, "tests": tuple(m["tests"])}) for m in raw]


def copy_worktree(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files of the working tree, as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def pytest(repo: Path, tests: list[str]) -> tuple[int, str]:
    """(pytest's exit status, the tail of its output); -1 on timeout."""
    # A base temp dir of its own: concurrent pytest runs of one user rotate /tmp/pytest-of-<user>
    # and would delete this run's server data directories under it.
    basetemp = tempfile.mkdtemp(prefix="pytest-", dir=repo.parent)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", f"--basetemp={basetemp}", *tests]
    try:
        done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_SECONDS} s"
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)
    return done.returncode, "\n".join((done.stdout + done.stderr).splitlines()[-25:])


def run_one(repo: Path, mutant: Mutant) -> str:
    target = repo / mutant.file
    original = target.read_text() if target.exists() else ""
    if original.count(mutant.find) != 1:
        return "stale"
    target.write_text(original.replace(mutant.find, mutant.replace))
    try:
        code, _ = pytest(repo, list(mutant.tests))
    finally:
        target.write_text(original)
    return {0: "SURVIVED", 1: "caught"}.get(code, f"error (pytest exit {code})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only these mutants (default: all)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    args = parser.parse_args(argv)
    mutants = load()
    unknown = set(args.names) - {m.name for m in mutants}
    if unknown:
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    if args.names:
        mutants = [m for m in mutants if m.name in args.names]

    with tempfile.TemporaryDirectory(prefix="bestie-mutants-") as scratch:
        repo = Path(scratch) / "repo"
        copy_worktree(repo)
        if not args.no_baseline:
            union = sorted({t for m in mutants for t in m.tests})
            print(f"baseline: {len(union)} test files, unmutated ...", flush=True)
            code, tail = pytest(repo, union)
            if code != 0:
                print(f"{tail}\nthe unmutated tests fail (pytest exit {code}); fix them before judging mutants")
                return 2
        outcomes: dict[str, str] = {}
        for m in mutants:
            started = time.monotonic()
            outcomes[m.name] = run_one(repo, m)
            print(f"{outcomes[m.name]:<10} {m.name:<32} {time.monotonic() - started:5.0f} s", flush=True)

    missed = [m for m in mutants if outcomes[m.name] != "caught"]
    print(f"\n{len(mutants) - len(missed)} of {len(mutants)} mutants caught.")
    if missed:
        print("Invariants no test catches:")
        for m in missed:
            print(f"  - {m.name} [{outcomes[m.name]}]: {m.invariant} ({m.file})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
