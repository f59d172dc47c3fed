"""Bytecode written once, before a parallel run's workers start.

Every xdist worker imports every test module, and pytest rewrites a test module's asserts
(parse, rewrite, compile) unless `__pycache__` already holds the rewritten bytecode. That is
about 3 s of CPU for this suite. In a fresh clone nothing is cached yet, so the six workers,
which start together, each did the whole rewrite, and the server processes the first tests
start each compiled the code base too. The controller now writes both first, split over the
cores, and each worker only reads them.

It uses pytest's own rewrite and pyc writer (`_pytest.assertion.rewrite`, pytest 9.2), so a
worker reads exactly what it would have written. Where that module's internals differ (another
pytest), or bytecode is not to be written (PYTHONDONTWRITEBYTECODE), nothing is done: the run
is only slower.
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

import pytest

SOURCES = ("shared", "functions", "infra", "bench")  # the code base the tests and their servers import


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
    workers = os.cpu_count() or 1
    children = []
    for share in range(workers):
        pid = os.fork()
        if pid == 0:  # a child: its share of each list
            try:
                _rewrite(config, stale[share::workers])
                for path in sources[share::workers]:
                    compileall.compile_file(path, quiet=2)  # skips a module whose bytecode is current
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
