"""A missing network prerequisite is named by the preflight and refused by the platform.

For each prerequisite of docs/deployment.md steps 2 and 4 (the Memorystore service connection
policy, private services access, the functions' egress path, the FCM API, the DNS record of
the managed certificate), one project state lacks it: the preflight, reading that project,
names it alone, and the stand-in records the step Google refuses without it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from infra import deploy
from shared import manifest
from tests.platform import standin
from tests.platform.standin import HostUnreachable, Network, Platform
from tests.tooling.test_deploy_preflight import Project

NAMES = ("healthz", "pairing-request", "sweep-heartbeat-mirror")
FAILED_DNS = {"managed": {"domainStatus": {"api.bestie.example": "FAILED_NOT_VISIBLE"}}}


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> deploy.Plan:
    config = deploy.load_config("bestie-prod", "asia-southeast2")  # production's: Cloud SQL, FCM
    config = replace(config, ingress_settings="internal-and-gclb", env={**config.env, "TRUSTED_PROXY_HOPS": "2"})
    functions = tuple(fn for fn in manifest.load().functions if fn.name in NAMES)
    return deploy.plan(functions, config, {}, tmp_path_factory.mktemp("plan"), load_balancer=True)


def _project(plan: deploy.Plan, network: Network) -> Project:
    """The preflight's view of a project holding what `network` holds (and everything else)."""
    project = Project(plan)
    if not network.connection_policy:
        del project.answers["service-connection-policies list"]
    if not network.private_services_access:
        del project.answers["vpc-peerings list"]
    if not network.egress_path:
        del project.answers["connectors describe"]
    if not network.fcm_api:
        services = project.answers["services list"]
        assert isinstance(services, list)
        project.answers["services list"] = [s for s in services if s["config"]["name"] != "fcm.googleapis.com"]
    if not network.dns:
        project.answers["ssl-certificates describe"] = FAILED_DNS
    return project


def _preflight(plan: deploy.Plan, read: Project) -> list[str]:
    return deploy.preflight(plan, read=read, read_secret=lambda *_: b"value", check_scheduler=lambda _: None)


@pytest.mark.parametrize(
    ("missing", "named", "refused"),
    [
        ("connection_policy", "no service connection policy for gcp-memorystore", "memorystore instances create"),
        ("private_services_access", "no private services access", "sql instances create --no-assign-ip"),
        ("egress_path", "Serverless VPC Access connector bestie does not exist", "gcloud functions deploy names"),
        ("fcm_api", "fcm.googleapis.com", "FCM sends refused"),
        ("dns", "DNS A record", "certificate bestie-cert never provisions"),
    ],
)
def test_a_missing_network_prerequisite_is_named_by_the_preflight_and_refused_by_the_platform(
    plan, tmp_path, test_env, missing, named, refused
):
    network = Network(**{missing: False})
    problems = _preflight(plan, _project(plan, network))
    assert len(problems) == 1 and named in problems[0], problems
    values = standin.test_secret_values(test_env["DATABASE_URL"], test_env["VALKEY_URL"])
    platform = Platform(plan, values, tmp_path, network=network)
    try:
        assert platform.refused and all(refused in entry for entry in platform.refused), platform.refused
    finally:
        platform.stop()


def test_with_every_network_prerequisite_the_preflight_passes_and_nothing_is_refused(plan, tmp_path, test_env):
    assert _preflight(plan, _project(plan, Network())) == []
    values = standin.test_secret_values(test_env["DATABASE_URL"], test_env["VALKEY_URL"])
    assert Platform(plan, values, tmp_path).refused == []


def test_without_the_egress_path_no_function_exists_and_without_dns_the_host_does_not_resolve(plan, tmp_path, test_env):
    values = standin.test_secret_values(test_env["DATABASE_URL"], test_env["VALKEY_URL"])
    no_egress = Platform(plan, values, tmp_path / "egress", network=Network(egress_path=False))
    assert {entry.split(":")[0] for entry in no_egress.refused} == set(NAMES)
    assert no_egress.open("GET", "https://api.bestie.example/healthz").status_code == 404
    job = plan.jobs[0]
    assert no_egress.fire(job).status_code == 404
    assert no_egress.instances == {}  # nothing was started: the functions do not exist
    no_dns = Platform(plan, values, tmp_path / "dns", network=Network(dns=False))
    with pytest.raises(HostUnreachable):
        no_dns.open("GET", "https://api.bestie.example/healthz")
