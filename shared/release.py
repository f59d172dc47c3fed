"""The release this code belongs to, as stamped into every bundle and every log line.

`make bundle` writes `shared/release.json` into each bundle: the project version (pyproject
and the top of CHANGELOG.md) plus the commit it was built from, e.g. `0.4.0+g1f0bbfc`, with
`.dirty` when the tree had uncommitted changes. Running from the repository (tests, `make dev`)
there is no such file and the release is `dev`. Logs carry it as `serviceContext.version`,
the field Error Reporting groups errors by
(https://cloud.google.com/error-reporting/docs/formatting-error-messages), so an alert or an
error names the release that produced it, and a rollback shows in the logs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

STAMP = Path(__file__).resolve().parent / "release.json"
UNSTAMPED = "dev"


@functools.cache
def version() -> str:
    """The release version of the running code (`dev` outside a bundle)."""
    try:
        return str(json.loads(STAMP.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return UNSTAMPED
