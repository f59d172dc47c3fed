"""The tooling tier: the repository's tools (deploy plan, bundle, docs checks).

No servers: tests/conftest.py starts none here."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from infra import bundle


@pytest.fixture(scope="session", autouse=True)
def _each_bundle_analysed_once() -> Iterator[None]:
    """The deploy tests plan the real manifest dozens of times, and each plan walks every import
    of every group with `ast`. The source tree does not change during a run, so each group's
    analysis is computed once (and handed out as fresh lists, so no caller can alter the cache)."""
    real = bundle.analyse
    cached = functools.cache(real)

    def analyse(group: str) -> tuple[list[str], list[str]]:
        requirements, modules = cached(group)
        return list(requirements), list(modules)

    patch = pytest.MonkeyPatch()
    patch.setattr(bundle, "analyse", analyse)
    try:
        yield
    finally:
        patch.undo()
