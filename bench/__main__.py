"""Run every benchmark module in this package (`make bench`)."""

import importlib
import pkgutil

import bench

for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
    if not info.name.startswith("_"):
        module = importlib.import_module(f"bench.{info.name}")
        if hasattr(module, "main"):
            module.main()
