"""The preflight reads every prerequisite of a first deploy and names what is missing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from infra import deploy
from infra.deploy import prerequisites
from shared import manifest

PROJECT, REGION = "bestie-prod", "asia-southeast2"
DEPLOYER = "deployer@example.com"


class Project:
    """Answers the preflight's gcloud reads for a project with everything the guide creates.

    `without` removes prerequisites by the name of the command group they answer. Every
    command it is asked is recorded, so a test sees what was read.
    """

    def __init__(self, plan: deploy.Plan, without: Sequence[str] = ()) -> None:
        c = plan.config
        network = f"projects/{c.project}/global/networks/{c.network}"
        apis = [*prerequisites.APIS, prerequisites.FCM_API]
        accounts = [c.service_account, c.scheduler_service_account, c.migrate_service_account]
        roles = [*prerequisites.DEPLOYER_ROLES, prerequisites.LOAD_BALANCER_ROLE]
        self.answers: dict[str, object] = {
            "services list": [{"config": {"name": api}, "state": "ENABLED"} for api in apis],
            "projects get-iam-policy": {"bindings": [{"role": r, "members": [f"user:{DEPLOYER}"]} for r in roles]},
            "service-accounts list": [{"email": email} for email in accounts],
            "connectors describe": {"name": c.vpc_connector, "state": "READY"},
            "service-connection-policies list": [{"serviceClass": "gcp-memorystore", "network": network}],
            "vpc-peerings list": [
                {"service": "services/servicenetworking.googleapis.com", "reservedPeeringRanges": ["google-managed"]}
            ],
            "instances describe": {
                "settings": {
                    "ipConfiguration": {"privateNetwork": network},
                    "databaseFlags": [{"name": "cloudsql.iam_authentication", "value": "on"}],
                }
            },
            "users list": [
                {"name": c.env["DB_USER"]},
                {"name": (c.migrate_service_account or "").removesuffix(".gserviceaccount.com")},
            ],
            "addresses describe": {"address": "203.0.113.7"},
            "ssl-certificates describe": {
                "managed": {"status": "PROVISIONING", "domainStatus": {"api.x": "PROVISIONING"}}
            },
        }
        for key in without:
            del self.answers[key]
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> str | None:
        self.asked.append(tuple(argv))
        if tuple(argv) == prerequisites.ACCOUNT_COMMAND:
            return DEPLOYER + "\n"
        joined = " ".join(argv)
        for key, answer in self.answers.items():
            if key in joined:
                return json.dumps(answer)
        return None  # gcloud's exit status for a resource that does not exist


def complete_project(plan: deploy.Plan) -> Project:
    return Project(plan)


def _plan(load_balancer: bool = False) -> deploy.Plan:
    config = deploy.load_config(PROJECT, REGION)
    if load_balancer:
        config = replace(config, ingress_settings="internal-and-gclb", env={**config.env, "TRUSTED_PROXY_HOPS": "2"})
    return deploy.plan(manifest.load().functions, config, {}, Path("/nonexistent/build"), load_balancer=load_balancer)


def _preflight(plan: deploy.Plan, read: Project) -> list[str]:
    return deploy.preflight(plan, read=read, read_secret=lambda *_: b"value", check_scheduler=lambda _: None)


def test_a_project_with_every_prerequisite_passes_the_preflight():
    plan = _plan(load_balancer=True)
    assert _preflight(plan, complete_project(plan)) == []


def test_a_new_project_gets_every_missing_prerequisite_named_with_its_step():
    plan = _plan(load_balancer=True)
    text = "\n".join(_preflight(plan, Project(plan, without=list(Project(plan).answers))))
    for expected in (
        "APIs not enabled: cloudfunctions.googleapis.com",
        "servicenetworking.googleapis.com",
        "iam.googleapis.com",
        "fcm.googleapis.com",
        f"user:{DEPLOYER} is not granted roles/cloudfunctions.admin",
        "roles/compute.loadBalancerAdmin",
        "service accounts missing: bestie-functions@",
        "bestie-migrate@",
        "Serverless VPC Access connector bestie does not exist",
        "no service connection policy for gcp-memorystore in network bestie",
        "no private services access in network bestie",
        "the Cloud SQL instance does not exist",
        "Cloud SQL IAM users missing",
        "the global address bestie-ip does not exist",
        "the certificate bestie-cert does not exist",
    ):
        assert expected in text, expected
    assert "(docs/deployment.md step 4)" in text


@pytest.mark.parametrize(
    ("without", "named"),
    [
        ("service-connection-policies list", "gcp-memorystore"),
        ("vpc-peerings list", "private services access"),
        ("users list", "Cloud SQL IAM users missing"),
        ("connectors describe", "connector"),
    ],
)
def test_each_missing_prerequisite_is_named_alone(without, named):
    plan = _plan()
    problems = _preflight(plan, Project(plan, without=[without]))
    assert len(problems) == 1 and named in problems[0]


def test_cloud_functions_developer_is_not_enough_to_set_invoker_policies():
    plan = _plan()
    read = Project(plan)
    developer = [*(r for r in prerequisites.DEPLOYER_ROLES if r != "roles/cloudfunctions.admin")]
    read.answers["projects get-iam-policy"] = {
        "bindings": [
            {"role": r, "members": [f"user:{DEPLOYER}"]} for r in [*developer, "roles/cloudfunctions.developer"]
        ]
    }
    assert any("roles/cloudfunctions.admin" in p for p in _preflight(plan, read))
    read.answers["projects get-iam-policy"] = {"bindings": [{"role": "roles/owner", "members": [f"user:{DEPLOYER}"]}]}
    assert _preflight(plan, read) == []


def test_fcm_is_required_only_when_pushes_go_to_fcm():
    plan = _plan()
    read = Project(plan)
    read.answers["services list"] = [{"config": {"name": api}} for api in prerequisites.APIS]
    assert [p for p in _preflight(plan, read) if "fcm.googleapis.com" in p]
    log_push = replace(plan.config, env={**plan.config.env, "PUSH_PROVIDER": "log"})
    assert _preflight(replace(plan, config=log_push), read) == []


def test_a_certificate_whose_domain_failed_names_the_dns_record():
    plan = _plan(load_balancer=True)
    read = Project(plan)
    read.answers["ssl-certificates describe"] = {"managed": {"domainStatus": {"api.x": "FAILED_NOT_VISIBLE"}}}
    assert any("DNS A record" in p for p in _preflight(plan, read))


def test_the_dry_run_lists_every_prerequisite_read_and_the_preflight_runs_exactly_those(capsys, monkeypatch):
    monkeypatch.delenv("ENABLE_TEST_ENDPOINTS", raising=False)
    monkeypatch.delenv("SWEEP_AUTH", raising=False)
    plan = _plan()
    read = complete_project(plan)
    _preflight(plan, read)
    text = deploy.render(plan)
    preflight_section = text.split("# 0. Preflight")[1].split("# 1. Bundles")[0]
    for argv in read.asked:
        assert deploy.format_command(argv) in preflight_section
    for secret in deploy.mounted_secret_ids(plan):
        assert f"--secret={secret}" in preflight_section
    assert "ADMIN_PASSWORD" in deploy.mounted_secret_ids(plan)  # the migration job's


def test_the_preflight_flag_reports_what_is_missing_and_changes_nothing(monkeypatch, capsys):
    monkeypatch.delenv("ENABLE_TEST_ENDPOINTS", raising=False)
    monkeypatch.delenv("SWEEP_AUTH", raising=False)
    ran: list[Sequence[str]] = []

    def no_gcloud(argv: Sequence[str]) -> str | None:
        ran.append(argv)
        return None

    monkeypatch.setattr(deploy.executor, "_read", no_gcloud)
    monkeypatch.setattr(deploy.executor, "_gcloud_secret", lambda *_: None)
    monkeypatch.setattr(deploy.executor, "_check_scheduler", lambda _: None)
    monkeypatch.setattr(deploy.executor, "_run", lambda argv: pytest.fail(f"ran {argv}"))
    assert deploy.main(["--project", PROJECT, "--region", REGION, "--preflight"]) == 2
    captured = capsys.readouterr()
    assert "missing: no service connection policy" in captured.err
    assert "nothing was changed" in captured.out
    assert all(
        argv[1] in ("config", "services", "projects", "iam", "compute", "network-connectivity", "sql") for argv in ran
    )
