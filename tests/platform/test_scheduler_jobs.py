"""Every Cloud Scheduler job of the plan reaches its sweep through Cloud Run IAM, and it runs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from infra.deploy import Plan
from tests.platform.standin import REMOVED, Platform
from tests.support.loopback import google_claims


def _jobs(plan: Plan) -> dict[str, object]:
    return {job.name.rsplit("/", 1)[-1]: job for job in plan.jobs}


def test_the_plan_has_one_job_per_sweep(platform_plan):
    sweeps = {fp.fn.name for fp in platform_plan.functions if fp.fn.is_sweep}
    assert set(_jobs(platform_plan)) == sweeps and sweeps


@pytest.mark.parametrize(
    "job_name", ["sweep-auto-offline", "sweep-heartbeat-mirror", "sweep-availability-reseed", "sweep-session-expiry"]
)
def test_every_scheduler_job_reaches_its_sweep_and_the_sweep_runs(platform: Platform, platform_plan, job_name):
    job = _jobs(platform_plan)[job_name]
    resp = platform.fire(job, scheduled=datetime.now(UTC).replace(microsecond=0))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["ran"] is True


def test_a_token_naming_another_account_is_refused_by_cloud_run_iam(platform: Platform, platform_plan):
    job = _jobs(platform_plan)["sweep-heartbeat-mirror"]
    resp = platform.fire(job, as_account="intruder@bestie-prod.iam.gserviceaccount.com")
    assert resp.status_code == 403


def test_a_token_naming_another_invoker_is_refused_by_the_sweep_itself(platform: Platform, platform_plan):
    # Someone granted a second account the invoker role: IAM lets it through, the claim check does not.
    other = "ops@bestie-prod.iam.gserviceaccount.com"
    platform.grant_invoker("sweep-session-expiry", f"serviceAccount:{other}")
    resp = platform.fire(_jobs(platform_plan)["sweep-session-expiry"], as_account=other)
    assert resp.status_code == 403 and resp.json["error"]["code"] == "OIDC_WRONG_CALLER"


def test_a_sweep_without_a_token_never_reaches_the_function(platform: Platform, platform_plan):
    job = _jobs(platform_plan)["sweep-auto-offline"]
    resp = platform.open("POST", job.http_target.uri, environ_base={"standin.internal": True})
    assert resp.status_code == 401


def _unsigned(claims: dict[str, object]) -> str:
    """A token anyone can write: Google's claim shape, no Google signature."""

    def segment(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{segment({'alg': 'RS256', 'kid': 'forged', 'typ': 'JWT'})}.{segment(claims)}.{REMOVED}"


def test_a_forged_authorization_beside_an_invokers_serverless_token_runs_no_sweep(platform: Platform, platform_plan):
    # Any member with run.invoker (project owners and editors hold it) passes IAM with its own
    # token in X-Serverless-Authorization; Cloud Run then forwards Authorization untouched.
    job = _jobs(platform_plan)["sweep-availability-reseed"]
    uri, oidc = job.http_target.uri, job.http_target.oidc_token
    audience, scheduler_account = oidc.audience or uri, oidc.service_account_email
    owner = "owner@bestie-prod.iam.gserviceaccount.com"
    platform.grant_invoker("sweep-availability-reseed", f"serviceAccount:{owner}")
    resp = platform.open(
        "POST",
        uri,
        headers={
            "X-Serverless-Authorization": f"Bearer {platform.id_token(owner, audience)}",
            "Authorization": f"Bearer {_unsigned(google_claims(audience, scheduler_account))}",
            "X-CloudScheduler-ScheduleTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        environ_base={"standin.internal": True},
    )
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] in ("OIDC_WRONG_CALLER", "OIDC_IDENTITY_MISMATCH")


def test_the_schedulers_token_in_x_serverless_authorization_runs_the_sweep(platform: Platform, platform_plan):
    job = _jobs(platform_plan)["sweep-auto-offline"]
    uri, oidc = job.http_target.uri, job.http_target.oidc_token
    audience, scheduler_account = oidc.audience or uri, oidc.service_account_email
    resp = platform.open(
        "POST",
        uri,
        headers={"X-Serverless-Authorization": f"Bearer {platform.id_token(scheduler_account, audience)}"},
        environ_base={"standin.internal": True},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.json["ran"] is True
