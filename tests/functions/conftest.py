"""Fixtures of the sign-in modules: Google's and Apple's keys, served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.auth_support import RsaKey, identity_providers


@pytest.fixture(scope="module")
def keys() -> tuple[RsaKey, RsaKey]:
    """Google's and Apple's signing keys, one pair per module."""
    return RsaKey(), RsaKey()


@pytest.fixture
def providers(keys: tuple[RsaKey, RsaKey]) -> Iterator[Any]:
    """Both providers' key endpoints on loopback, and the settings pointing at them."""
    with identity_providers(*keys) as provided:
        yield provided
