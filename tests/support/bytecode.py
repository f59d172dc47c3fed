"""Bytecode written once, before a parallel run's workers start.

Every xdist worker imports every test module, and pytest rewrites a test module's asserts
(parse, rewrite, compile) unless `__pycache__` already holds the rewritten bytecode. That is
about 2 s of CPU for this suite, and compiling the installed packages a worker imports
(a fresh venv holds no bytecode) another 3.5 s. In a fresh clone nothing is cached yet, so the
six workers, which start together, each did all of it, and the server processes the first
tests start each compiled the code base too. The controller now has it written first, split
over the cores, and each worker only reads it.

The installed packages are compiled by importing them: only what an import reaches is
compiled, the few hundred modules of the suite's imports, not the thousands installed.

It uses pytest's own rewrite and pyc writer (`_pytest.assertion.rewrite`, pytest 9.2), so a
worker reads exactly what it would have written. Where that module's internals differ (another
pytest), or bytecode is not to be written (PYTHONDONTWRITEBYTECODE), nothing is done: the run
is only slower.
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import os
import re
import signal
import sys
import sysconfig
from pathlib import Path

import pytest

SOURCES = ("shared", "functions", "infra", "bench")  # the code base the tests and their servers import
# Installed packages that import most of themselves later (schemathesis: while collecting), so
# importing the package reaches too little; each of their modules is imported.
IMPORTED_WHOLE = ("schemathesis",)
_INSTALLED = (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"))  # the venv's site-packages
# A module-level import (one in a function is deferred on purpose: it may never run in a test).
_IMPORT = re.compile(r"^(?:from\s+([\w.]+)\s+import\s+\(?([\w, ]*)|import\s+([\w.]+))", re.MULTILINE)


def _rewritten_pyc(module: Path) -> Path:
    from _pytest.assertion.rewrite import PYC_TAIL

    return module.parent / "__pycache__" / (module.name[:-3] + PYC_TAIL)


def _test_modules(config: pytest.Config, tests: Path) -> list[Path]:
    """The modules pytest rewrites: conftests and files named like tests."""
    patterns = config.getini("python_files")
    return sorted(
        path
        for path in tests.rglob("*.py")
        if path.name == "conftest.py" or any(path.match(pattern) for pattern in patterns)
    )


def _imported_names(sources: list[Path]) -> set[str]:
    """Every dotted name the sources import at module level (a member may be no module)."""
    names: set[str] = set()
    for source in sources:
        for module, members, imported in _IMPORT.findall(source.read_text()):
            if imported:
                names.add(imported)
            else:
                names.add(module)
                names.update(f"{module}.{member.split()[0]}" for member in members.split(",") if member.strip())
    return names


@functools.cache
def _top_level_spec(top: str) -> importlib.machinery.ModuleSpec | None:
    return importlib.util.find_spec(top)  # a top-level name: nothing is imported


def _installed_source(name: str) -> Path | None:
    """The installed file of module `name`, found without importing anything."""
    top, _, rest = name.partition(".")
    spec = _top_level_spec(top)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    if not spec.origin.startswith(_INSTALLED):
        return None  # the standard library (compiled) or the repo (compiled above)
    if not rest:
        return Path(spec.origin)
    base = Path(spec.origin).parent.joinpath(*rest.split("."))
    return next((path for path in (base.with_suffix(".py"), base / "__init__.py") if path.is_file()), None)


def _uncompiled(source: Path) -> bool:
    """No bytecode, plain or (in a pytest plugin's package) with its asserts rewritten."""
    return not (Path(importlib.util.cache_from_source(source)).exists() or _rewritten_pyc(source).exists())


def _installed_imports(sources: list[Path]) -> list[str]:
    """The installed modules the sources import that have no bytecode yet."""
    names = _imported_names(sources)
    for package in IMPORTED_WHOLE:
        init = _installed_source(package)
        if init is not None and init.name == "__init__.py":
            root = init.parent
            names.update(
                ".".join((package, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
                for path in root.rglob("*.py")
            )
    return sorted(name for name in names if (source := _installed_source(name)) and _uncompiled(source))


def _import(names: list[str]) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # what an import prints (a warning, a banner) is no part of the run's output
    os.dup2(devnull, 2)
    for name in names:
        with contextlib.suppress(Exception):  # a member that is no module, or an import that fails here
            importlib.import_module(name)


def _rewrite(config: pytest.Config, modules: list[Path]) -> None:
    from _pytest.assertion.rewrite import _rewrite_test, _write_pyc, assertstate_key

    state = config.stash[assertstate_key]
    for module in modules:
        pyc = _rewritten_pyc(module)
        pyc.parent.mkdir(exist_ok=True)
        source_hash, code = _rewrite_test(module, config)
        _write_pyc(state, code, source_hash, pyc)


def warm(config: pytest.Config, repo: Path) -> None:
    """Write the rewritten test modules and the code base's bytecode that are missing or stale."""
    if sys.dont_write_bytecode:
        return
    try:
        from _pytest.assertion.rewrite import _read_pyc, assertstate_key

        trace = config.stash[assertstate_key].trace
        tests = _test_modules(config, repo / "tests")
        stale = [m for m in tests if _read_pyc(m, _rewritten_pyc(m), trace) is None]
    except (ImportError, AttributeError, KeyError, TypeError):
        return  # another pytest's internals, or assertion rewriting is off (--assert=plain)
    helpers = set((repo / "tests").rglob("*.py")) - set(tests)  # imported as they are, not rewritten
    sources = sorted(helpers.union(*((repo / source).rglob("*.py") for source in SOURCES)))
    installed = _installed_imports([*tests, *sources])
    workers = os.cpu_count() or 1
    children = []
    for share in range(workers):
        pid = os.fork()
        if pid == 0:  # a child: its share of each list
            signal.alarm(120)  # an import that hangs ends its child, never the run
            try:
                _rewrite(config, stale[share::workers])
                for path in sources[share::workers]:
                    compileall.compile_file(path, quiet=2)  # skips a module whose bytecode is current
                _import(installed[share::workers])
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
