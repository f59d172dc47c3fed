"""The platform stand-in, started once per session from the plan the deploy would execute."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from infra import deploy
from shared import manifest
from tests.platform.standin import Platform, test_secret_values

PROJECT, REGION = "bestie-prod", "asia-southeast2"
CC_ORIGIN = "https://cc.example.test"


def standin_config(prefix: str) -> deploy.Config:
    """The production config, pointed at the test servers (DATABASE_URL instead of Cloud SQL)."""
    config = deploy.load_config(PROJECT, REGION)
    return replace(
        config,
        ingress_settings="internal-and-gclb",
        env={
            "VALKEY_PREFIX": prefix,
            "OTP_PROVIDER": "fazpass",
            "FAZPASS_BASE_URL": "http://127.0.0.1:9",
            "PUSH_PROVIDER": "log",
            "LOG_LEVEL": "INFO",
            "CC_ORIGIN": CC_ORIGIN,
            "TRUSTED_PROXY_HOPS": "2",
            # One pass per invocation: at the production 30 s, a sweep's second pass waits out
            # the cadence (shared/sweeps/runner.py), and these tests check the first one.
            "MITRA_AUTO_OFFLINE_SWEEP_SECONDS": "60",
            "SESSION_EXPIRY_SWEEP_SECONDS": "60",
        },
    )


# Their tests cold-start tens of function processes each: on two shared cores one start can
# take seconds, so they get longer than the suite's 300 s before pytest-timeout stops them.
TIMEOUT_SECONDS = 900
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIMEOUT_SECONDS))


@pytest.fixture(scope="session")
def platform_plan(tmp_path_factory: pytest.TempPathFactory) -> deploy.Plan:
    config = standin_config(f"p{uuid.uuid4().hex[:10]}:")
    return deploy.plan(manifest.load().functions, config, {}, tmp_path_factory.mktemp("plan") / "build")


@pytest.fixture(scope="session")
def platform(
    platform_plan: deploy.Plan, test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The session's stand-in. Functions of one group with the same env and secrets share a
    process (each still loaded from its main.py with its own target), as in test_real_env: these
    tests check routing, IAM, answers and logs of every function, not one instance's isolation,
    and a process per function cost each run about 90 cold starts. A cold start of one function
    alone (`Platform.start`) is still what the cold-start tests run."""
    workdir: Path = tmp_path_factory.mktemp("platform")
    values = test_secret_values(test_env["DATABASE_URL"], test_env["VALKEY_URL"])
    standin = Platform(platform_plan, values, workdir, shared_processes=True)
    try:
        yield standin
    finally:
        standin.stop()
