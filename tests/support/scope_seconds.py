"""The committed snapshot of how long each slow test or group takes, for a run with no pytest cache.

`make test` hands work out longest first (tests/conftest.py). A run's own measurements live
in the pytest cache, which a fresh clone (CI) lacks: there every ungrouped test counted as one
second, and a 20-second test could be handed out last and end the run alone. The snapshot
gives those runs the order of the last measured one.

    .venv/bin/python -m tests.support.scope_seconds   # rewrite it from the last parallel run's cache
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).resolve().parent / "scope_seconds.json"
CACHE = ROOT / ".pytest_cache" / "v" / "bestie" / "xdist-scope-seconds"
MIN_SECONDS = 2.0  # shorter scopes keep the default: their order hardly matters


def load() -> dict[str, float]:
    return json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}


def _exists(scope: str) -> bool:
    """A group name, or the id of a test still defined (the cache keeps ids of moved tests)."""
    path, _, rest = scope.partition("::")
    if not rest:
        return True
    file = ROOT / path
    return file.exists() and f"def {rest.split('[')[0]}(" in file.read_text()


def main() -> None:
    measured: dict[str, float] = json.loads(CACHE.read_text())
    slow = {scope: round(s, 1) for scope, s in sorted(measured.items()) if s >= MIN_SECONDS and _exists(scope)}
    SNAPSHOT.write_text(json.dumps(slow, indent=1, sort_keys=True) + "\n")
    print(f"{len(slow)} scopes of {MIN_SECONDS:.0f} s or more written to {SNAPSHOT}")


if __name__ == "__main__":
    main()
