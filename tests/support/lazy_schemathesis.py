"""Schemathesis tests built when they run, not when they are collected.

For each operation, schemathesis's pytest plugin builds the Hypothesis test at collection:
the cases of the documented examples and of its coverage phase are generated right then
(`schemathesis.pytest.plugin` `_gen_items` calls `_test_builder.build_operation_test`), about
2.5 s of CPU for openapi.yaml's 95 operations. Every xdist worker collects every test, and all
but one of them never run the fuzz group, so each paid that for nothing.

`defer()` swaps the builder, which the plugin looks up on each collection, for one that
returns a stand-in and builds the real test, with the very arguments the plugin gave, on the
stand-in's first call. The cases, their number, the seed and the checks are those of the
eager build; an operation whose definition schemathesis cannot build fails when it runs
instead of at collection.

The stand-in carries the signature of the built test (the test function's, without `case`),
so pytest hands it the same fixtures. It is not a Hypothesis test to Hypothesis's pytest
plugin, which therefore skips its checks of function-scoped fixtures (the fuzz test uses a
module-scoped one); Hypothesis still reports a falsifying example in the failure.

Tied to schemathesis's internals: requirements-dev.txt pins its version, and `defer()` fails
at import if the builder is not where this expects it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from schemathesis.pytest import _test_builder

_eager = _test_builder.build_operation_test


def defer() -> None:
    """Make every schemathesis test of this process build on its first call (idempotent)."""
    parameters = inspect.signature(_eager).parameters
    expected = {"config", "operation", "test_func", "given_kwargs", "feedback"}
    if not expected <= set(parameters):
        raise RuntimeError(f"schemathesis's build_operation_test changed: {sorted(parameters)}")
    _test_builder.build_operation_test = _lazy


def _lazy(**kwargs: Any) -> Callable[..., Any]:
    built: list[Callable[..., Any]] = []
    lock = threading.Lock()

    def test(*args: Any, **fixtures: Any) -> Any:
        with lock:
            if not built:
                built.append(_eager(**kwargs))
        return built[0](*args, **fixtures)

    func = kwargs["test_func"]
    given = {"case", *kwargs["given_kwargs"]}  # what the built test's @given supplies
    signature = inspect.signature(func)
    test.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for name, p in signature.parameters.items() if name not in given]
    )
    test.__name__ = func.__name__
    test.__qualname__ = func.__qualname__
    test.__module__ = func.__module__
    return test
