"""The deploy's IAM steps need the deployer roles docs/deployment.md names (step 3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from infra import deploy
from infra.deploy import prerequisites
from shared import manifest
from tests.platform import standin
from tests.platform.conftest import standin_config
from tests.platform.standin import Platform

NAMES = ("healthz", "sweep-heartbeat-mirror")


def _platform(tmp_path, test_env, roles: tuple[str, ...]) -> Platform:
    functions = tuple(fn for fn in manifest.load().functions if fn.name in NAMES)
    the_plan = deploy.plan(functions, standin_config(f"r{uuid.uuid4().hex[:8]}:"), {}, tmp_path / "plan")
    values = standin.test_secret_values(test_env["DATABASE_URL"], test_env["VALKEY_URL"])
    return Platform(the_plan, values, tmp_path, deployer_roles=roles)


def test_with_cloud_functions_developer_no_function_can_be_invoked_and_each_iam_step_is_refused(tmp_path, test_env):
    developer = tuple(r for r in prerequisites.DEPLOYER_ROLES if r != "roles/cloudfunctions.admin")
    platform = _platform(tmp_path, test_env, (*developer, "roles/cloudfunctions.developer"))
    try:
        assert {entry.split(":")[0] for entry in platform.refused} == set(NAMES)
        assert any("add-invoker-policy-binding" in entry for entry in platform.refused)
        assert platform.open("GET", "https://api.bestie.example/healthz").status_code == 403
        job = platform.plan.jobs[0]
        assert platform.fire(job, scheduled=datetime.now(UTC).replace(microsecond=0)).status_code == 403
    finally:
        platform.stop()


def test_with_the_documented_roles_every_iam_step_is_applied(tmp_path, test_env):
    platform = _platform(tmp_path, test_env, prerequisites.DEPLOYER_ROLES)
    try:
        assert platform.refused == []
        assert platform.open("GET", "https://api.bestie.example/healthz").status_code == 200
        job = platform.plan.jobs[0]
        resp = platform.fire(job, scheduled=datetime.now(UTC).replace(microsecond=0))
        assert resp.status_code == 200, resp.get_data(as_text=True)
    finally:
        platform.stop()
