"""Run every benchmark module of this package (`make bench`)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> int:
    failed = 0
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        print(f"== bench.{info.name}", flush=True)
        module = importlib.import_module(f"bench.{info.name}")
        failed += int(bool(module.main()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
