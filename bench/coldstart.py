"""Cold start of each bundle: how long `import main` takes in a fresh interpreter.

Builds every bundle into a temp dir and byte-compiles it (as the platform's build does), then
for each one starts several fresh interpreters that see only the bundle and site-packages (as
the Cloud Functions runtime does) and times `import main`, which parses config and loads every
module the group imports at cold start (the Postgres pool and the Valkey client are lazy, so
no server is needed). Prints the median, min and max, how many modules were loaded and whether
the heavy optional packages (firebase_admin, google.cloud.scheduler) were among them.

    .venv/bin/python -m bench.coldstart [--runs 7] [--importtime] [GROUP ...]

`--importtime` adds the ten slowest imports of one run (`python -X importtime`, cumulative).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from infra import bundle

HEAVY = ("firebase_admin", "google.cloud.scheduler")

# Import-time configuration only: the clients connect lazily, so these never get dialled.
# Variables of the calling shell win (a group that requires more at import finds them there).
ENV = {
    "DATABASE_URL": "postgresql://bench@127.0.0.1:1/bench",
    "VALKEY_URL": "redis://127.0.0.1:1/0",
    "AUTH_JWT_SECRET": "bench-" + "s" * 40,
    "OTP_HMAC_SECRET": "bench-" + "o" * 40,
} | dict(os.environ)

PROBE = f"""
import json, sys, time
started = time.perf_counter()
import main
elapsed = time.perf_counter() - started
heavy = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))
print(json.dumps({{"seconds": elapsed, "modules": len(sys.modules), "heavy": heavy}}))
"""


def compile_bundle(path: Path) -> None:
    """Byte-compile the bundle as the platform's build does before the first cold start: the
    Python functions-framework buildpack runs `python3 -m compileall -f -q .` in the function
    source (GoogleCloudPlatform/buildpacks, cmd/python/functions_framework/lib/lib.go)."""
    subprocess.run([sys.executable, "-m", "compileall", "-f", "-q", "."], cwd=path, check=True)


def measure(path: Path, runs: int) -> dict[str, Any]:
    """Median/min/max import time of `main` over `runs` fresh interpreters (bundle compiled first)."""
    compile_bundle(path)
    return _summary([_sample(path) for _ in range(runs)])


def _sample(path: Path) -> dict[str, Any]:
    """One fresh interpreter's `import main` of a compiled bundle."""
    done = subprocess.run(
        bundle.isolated_python(path, PROBE), cwd=path, env=ENV, capture_output=True, text=True, check=True
    )
    sample: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return sample


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [s["seconds"] for s in samples]
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "min_ms": min(seconds) * 1000,
        "max_ms": max(seconds) * 1000,
        "modules": samples[-1]["modules"],
        "heavy": samples[-1]["heavy"],
    }


# The floor of a cold start: what the runtime imports for any Python function of this stack
# (functions-framework and its Flask, redis-py), in a bare bundle. The Cloud SQL connector
# belongs to the floor only of a bundle that imports it at cold start; the heartbeat's loads it
# on its first Postgres connection, and with it the floor read 1.9 s against the heartbeat's
# 0.7 s (a ratio of 0.36 that no change to the heartbeat could push past its goal).
FLOOR_IMPORTS = ("functions_framework", "redis")


def _bare_bundle(path: Path, imports: tuple[str, ...]) -> Path:
    """Write a bare bundle into `path` that imports only `imports` and answers "ok"."""
    main_py = "".join(f"import {name}\n" for name in imports)
    main_py += '\n\n@functions_framework.http\ndef bare(request):\n    return "ok"\n'
    (path / "main.py").write_text(main_py)
    return path


def measure_with_floor(path: Path, runs: int, imports: tuple[str, ...] = FLOOR_IMPORTS) -> tuple[dict, dict]:
    """(`measure` of `path`, `measure` of the bare bundle), their runs taken in turn, the floor's
    first in every other pair: load drifting on the machine during the runs weighs on both alike,
    where seven runs of one and then seven of the other read ratios 0.1 apart on a quiet machine."""
    compile_bundle(path)
    with tempfile.TemporaryDirectory(prefix="bestie-coldstart-bare-") as tmp:
        floor = _bare_bundle(Path(tmp), imports)
        compile_bundle(floor)
        ours: list[dict[str, Any]] = []
        bare: list[dict[str, Any]] = []
        for i in range(runs):
            for target, samples in ((floor, bare), (path, ours)) if i % 2 else ((path, ours), (floor, bare)):
                samples.append(_sample(target))
    return _summary(ours), _summary(bare)


def slowest_imports(path: Path, top: int = 10) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest imports under `import main`."""
    argv = bundle.isolated_python(path, "import main")
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=path, env=ENV, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description="import time of each bundle's main.py")
    parser.add_argument("groups", nargs="*")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bestie-coldstart-") as tmp:
        bundles = bundle.build_all(Path(tmp), args.groups)
        print(f"cold start: `import main`, {args.runs} fresh interpreters per bundle")
        print(f"{'bundle':<10} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'modules':>8}  heavy imports")
        for built in bundles:
            r = measure(built.path, args.runs)
            heavy = ", ".join(r["heavy"]) or "none"
            print(
                f"{built.group:<10} {r['median_ms']:>10.1f} {r['min_ms']:>8.1f} {r['max_ms']:>8.1f}"
                f" {r['modules']:>8}  {heavy}"
            )
            if args.importtime:
                for micros, name in slowest_imports(built.path):
                    print(f"{'':<12}{micros / 1000:>8.1f} ms  {name}")


if __name__ == "__main__":
    main()
