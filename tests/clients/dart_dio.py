"""`make test-compat`: openapi-generator's `dart-dio` (what Flutter apps use) builds the Dart client from
openapi.yaml with zero warnings: the whole API, and the customer app's client filtered by tag.

The one line allowed is the generator's own notice that its OpenAPI 3.1 support is in beta: it
is printed for every 3.1 document, says nothing about this one, and cannot be turned off.
Enums are generated with `enumUnknownDefaultCase=true` (docs/api.md, Enums). Needs a JRE
(Debian: default-jre-headless; the Makefile installs it when java is missing).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "build" / "clients" / "dart"
ALLOWED = re.compile(r"OpenAPI 3\.1 support is still in beta")
NOTICE = re.compile(r"\b(WARN|WARNING|ERROR)\b")


# What each build gets: the whole document, and the customer app's client (its audience and
# the shared routes only, through openapi-generator's FILTER normalizer).
BUILDS = {
    "all": ((), ["client_api", "internal_api", "mitra_api", "shared_api", "sweeps_api"]),
    "customer-app": (("--openapi-normalizer", "FILTER=tag:client|shared"), ["client_api", "shared_api"]),
}


def build(name: str, extra: tuple[str, ...], wanted: list[str]) -> bool:
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "openapi-generator-cli"), "generate", "-g", "dart-dio"),
            *("-i", str(REPO / "openapi.yaml"), "-o", str(out), *extra),
            "--additional-properties=pubName=bestie_client,enumUnknownDefaultCase=true",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    log = done.stdout + done.stderr
    warnings = [line for line in log.splitlines() if NOTICE.search(line) and not ALLOWED.search(line)]
    apis = sorted(p.stem for p in (out / "lib" / "src" / "api").glob("*_api.dart"))
    if done.returncode != 0 or warnings or apis != wanted:
        print(log if done.returncode else "\n".join(warnings), file=sys.stderr)
        print(f"dart-dio {name}: exit {done.returncode}, {len(warnings)} warnings, APIs {apis}", file=sys.stderr)
        return False
    print(f"dart-dio {name}: zero warnings; APIs {', '.join(apis)}")
    return True


def main() -> int:
    results = [build(name, extra, wanted) for name, (extra, wanted) in BUILDS.items()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
