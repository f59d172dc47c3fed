"""The first-deploy failures, each pinned: budget, proxy hops, preflight, re-runs, runtime, config."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from infra import deploy
from infra.deploy import budget, executor, needs
from shared import config, manifest
from shared.config import Settings
from shared.errors import ConfigError
from tests.tooling.test_deploy_preflight import complete_project

PROJECT, REGION = "bestie-prod", "asia-southeast2"


@pytest.fixture
def cfg() -> deploy.Config:
    return deploy.load_config(PROJECT, REGION)


def _real_plan(config: deploy.Config) -> deploy.Plan:
    return deploy.plan(manifest.load().functions, config, {}, Path("/nonexistent/build"))


def test_every_function_that_checks_jwts_mounts_the_previous_secrets(cfg):
    plan = _real_plan(cfg)
    checking = [fp for fp in plan.functions if fp.fn.auth in config.JWT_AUTH_KINDS]
    assert {fp.fn.group for fp in checking} >= {"heartbeat", "admin", "pairing", "auth"}
    for fp in checking:
        assert {"AUTH_JWT_SECRET", "AUTH_JWT_PREVIOUS_SECRETS"} <= set(fp.secrets), fp.fn.name


def test_nothing_mounts_a_secret_its_code_never_reads(cfg):
    for fp in _real_plan(cfg).functions:
        assert set(fp.secrets) <= needs.reads(fp.fn), fp.fn.name
        assert "ADMIN_PASSWORD" not in fp.secrets
        assert "CC_ORIGIN" not in fp.env or fp.fn.route.startswith("/internal")


def test_a_deploy_config_variable_no_function_reads_is_refused(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('[env]\nPAIRING_BLST_SIZE = "10"\n')
    with pytest.raises(deploy.DeployRefused, match="PAIRING_BLST_SIZE"):
        _real_plan(deploy.load_config(PROJECT, REGION, override))


def test_the_real_plan_fits_its_connection_budget_and_pools_follow_concurrency(cfg):
    plan = _real_plan(cfg)
    surge = {line.name: line.surge for line in plan.budget.lines}
    assert all(surge[fp.fn.name] >= 1 for fp in plan.functions)  # room above every max instances
    total = sum((fp.max_instances + surge[fp.fn.name]) * fp.fn.pool_size for fp in plan.functions)
    assert total + cfg.db_reserved_connections == plan.budget.total <= cfg.db_max_connections
    for fp in plan.functions:
        assert fp.env["DB_POOL_SIZE"] == str(fp.fn.pool_size)
        assert f"--max-instances={fp.max_instances}" in fp.command
    heartbeat = plan.function("mitra-status-heartbeat")
    assert heartbeat.max_instances * heartbeat.fn.concurrency >= 800  # capacity stays high


def test_a_plan_over_the_connection_budget_is_refused(cfg):
    with pytest.raises(deploy.DeployRefused, match="DB_MAX_CONNECTIONS"):
        _real_plan(replace(cfg, db_max_connections=300))


def _one_fixed_two_shared() -> tuple[manifest.Function, ...]:
    """hot-x with max_instances 10 (pool 2), b-b (pool 2) and c-c (concurrency 4, pool 1) sharing the rest."""
    return manifest.parse(
        {
            "function": [
                {
                    "name": "hot-x",
                    "group": "g",
                    "entry_point": "a",
                    "method": "GET",
                    "route": "/a",
                    "max_instances": 10,
                },
                {"name": "b-b", "group": "g", "entry_point": "b", "method": "GET", "route": "/b"},
                {"name": "c-c", "group": "g", "entry_point": "c", "method": "GET", "route": "/c", "concurrency": 4},
            ]
        }
    ).functions


def test_the_budget_shares_what_is_left_and_refuses_less_than_one_instance_each():
    fns = _one_fixed_two_shared()
    # Pools are a quarter of concurrency, rounded up: 2, 2 and 1. Fixed: 10 x 2 + 20 reserved = 40;
    # the 160 left buy 160 // (2 + 1) = 53 instances of each shared function.
    got = budget.allocate(fns, 200, 20)
    assert [line.pool_size for line in got.lines] == [2, 2, 1]
    assert got.max_instances("hot-x") == 10 and got.max_instances("b-b") == got.max_instances("c-c") == 53
    assert got.total == 10 * 2 + 53 * 2 + 53 * 1 + 20 <= 200
    with pytest.raises(budget.OverBudget):
        budget.allocate(fns, 42, 20)  # 2 connections left for pools of 2 + 1: under one instance each


def test_the_budget_keeps_a_surge_margin_above_every_max_instances():
    # Cloud Run may briefly exceed max instances during a surge: 10% more instances (rounded
    # up, at least one) are counted for every function before anything is shared.
    fns = _one_fixed_two_shared()
    # Fixed: (10 + 1) x 2 + 20 reserved = 42; the 158 left buy s with (s + ceil(s/10)) x (2 + 1) <= 158: s = 47.
    got = budget.allocate(fns, 200, 20, surge=0.1)
    assert [(line.max_instances, line.surge) for line in got.lines] == [(10, 1), (47, 5), (47, 5)]
    assert got.total == 11 * 2 + 52 * 2 + 52 * 1 + 20 <= 200
    with pytest.raises(budget.OverBudget, match="surge"):
        budget.allocate(fns, 44, 20, surge=0.1)  # without the margin 44 fits: 10 x 2 + 20 + 1 x (2 + 1)
    assert budget.allocate(fns, 43, 20).max_instances("b-b") == 1


def test_two_proxy_hops_are_refused_while_function_urls_stay_public(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('[env]\nTRUSTED_PROXY_HOPS = "2"\n')
    config = deploy.load_config(PROJECT, REGION, override)
    with pytest.raises(deploy.DeployRefused, match="internal-and-gclb"):
        _real_plan(config)
    assert _real_plan(replace(config, ingress_settings="internal-and-gclb")).functions


@pytest.mark.parametrize(
    ("hops", "ingress"),
    [("", "all"), ("1", "all"), ("1", "internal-and-gclb"), ("2", "all"), ("3", "internal-and-gclb")],
)
def test_the_load_balancer_is_refused_unless_two_hops_and_ingress_internal_and_gclb(
    tmp_path, monkeypatch, capsys, hops, ingress
):
    # Behind the load balancer every request comes from the balancer's IP at one hop, so every
    # per-IP limit would count all clients together; with ingress "all" a direct caller forges
    # its IP at two hops. Only both settings together are safe.
    monkeypatch.delenv("ENABLE_TEST_ENDPOINTS", raising=False)
    monkeypatch.delenv("SWEEP_AUTH", raising=False)
    override = tmp_path / "deploy.toml"
    override.write_text(
        f'ingress_settings = "{ingress}"\n' + (f'[env]\nTRUSTED_PROXY_HOPS = "{hops}"\n' if hops else "")
    )
    argv = ["--project", PROJECT, "--region", REGION, "--config", str(override), "--dry-run"]
    assert deploy.main([*argv, "--load-balancer"]) == 2
    assert "--load-balancer needs TRUSTED_PROXY_HOPS = 2" in capsys.readouterr().err


def test_the_load_balancer_is_planned_with_two_hops_and_ingress_internal_and_gclb(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ENABLE_TEST_ENDPOINTS", raising=False)
    monkeypatch.delenv("SWEEP_AUTH", raising=False)
    override = tmp_path / "deploy.toml"
    override.write_text('ingress_settings = "internal-and-gclb"\n[env]\nTRUSTED_PROXY_HOPS = "2"\n')
    argv = ["--project", PROJECT, "--region", REGION, "--config", str(override), "--dry-run", "--load-balancer"]
    assert deploy.main(argv) == 0
    out = capsys.readouterr().out
    assert "--ingress-settings=internal-and-gclb" in out and "TRUSTED_PROXY_HOPS=2" in out
    assert "gcloud compute network-endpoint-groups create" in out


def test_build_service_account_is_passed_to_every_deploy(cfg):
    account = f"projects/{PROJECT}/serviceAccounts/bestie-build@{PROJECT}.iam.gserviceaccount.com"
    for fp in _real_plan(replace(cfg, build_service_account=account)).functions:
        assert f"--build-service-account={account}" in fp.command
    assert not any(a.startswith("--build-service-account") for a in _real_plan(cfg).functions[0].command)


def test_deployed_runtime_is_the_python_the_tests_run_on(cfg):
    assert cfg.runtime == f"python{sys.version_info.major}{sys.version_info.minor}"
    assert all(f"--runtime={cfg.runtime}" in fp.command for fp in _real_plan(cfg).functions)


def test_preflight_names_missing_and_empty_secrets_and_unusable_scheduler_credentials(cfg):
    plan = _real_plan(cfg)
    values = {"VALKEY_URL": b"rediss://x", "AUTH_JWT_SECRET": b"  \n"}

    def broken(_: deploy.Plan) -> None:
        raise RuntimeError("no ADC")

    read = complete_project(plan)
    problems = deploy.preflight(
        plan, read_secret=lambda _, s: values.get(s.rsplit(":", 1)[0]), check_scheduler=broken, read=read
    )
    text = "; ".join(problems)
    assert "secret AUTH_JWT_SECRET is empty" in text
    assert "secret OTP_HMAC_SECRET (version 1) does not exist" in text and "VALKEY_URL" not in text
    assert "application-default login" in text
    ran: list[list[str]] = []
    with pytest.raises(deploy.DeployRefused, match="preflight"):
        deploy.execute(
            plan, run=ran.append, run_create=ran.append, read_secret=lambda *_: None, check_scheduler=broken, read=read
        )
    assert ran == []  # nothing deployed


def test_every_secret_the_plan_mounts_is_checked(cfg):
    plan = _real_plan(cfg)
    asked: list[str] = []
    deploy.preflight(
        plan,
        read_secret=lambda _, s: asked.append(s.rsplit(":", 1)[0]) or b"v",
        check_scheduler=lambda _: None,
        read=complete_project(plan),
    )
    assert asked == deploy.mounted_secret_ids(plan)
    assert {"AUTH_JWT_PREVIOUS_SECRETS", "OTP_HMAC_SECRET", "VALKEY_URL"} <= set(asked)


@pytest.mark.parametrize(
    "stderr",
    [
        "ERROR: (gcloud.compute.network-endpoint-groups.create) Resource 'x' already exists",
        "ERROR: (gcloud.compute.backend-services.add-backend) Backend [x-neg] in [r] already exists in [x]",
    ],
)
def test_a_rerun_treats_already_existing_resources_as_done(monkeypatch, stderr):
    done = subprocess.CompletedProcess([], 1, "", stderr)
    monkeypatch.setattr(executor.subprocess, "run", lambda *a, **k: done)
    deploy._run_create(["gcloud", "compute", "backend-services", "add-backend", "x"])  # no raise


def test_a_rerun_with_the_load_balancer_runs_add_backend_as_a_create_step(cfg, tmp_path):
    behind = replace(cfg, ingress_settings="internal-and-gclb", env={**cfg.env, "TRUSTED_PROXY_HOPS": "2"})
    plan = deploy.plan(manifest.load().functions, behind, {}, tmp_path, load_balancer=True)
    created: list[list[str]] = []
    ran: list[list[str]] = []

    class Jobs:
        def get_job(self, *, name):
            return next(job for job in plan.jobs if job.name == name)

    deploy.execute(
        plan,
        run=ran.append,
        run_create=created.append,
        scheduler_client=Jobs(),
        read_secret=lambda *_: b"v",
        check_scheduler=lambda _: None,
        read=complete_project(plan),
        find=lambda argv: "projects/p/found",  # a rerun: the metrics, policies and dashboard exist
    )
    assert {cmd[3] for cmd in created} == {"create", "add-backend"}
    assert not any(cmd[3] in ("create", "add-backend") for cmd in ran if cmd[1] == "compute")


def test_admin_group_requires_the_jwt_secret_at_import():
    env = {"DATABASE_URL": "postgresql://x@h/d", "VALKEY_URL": "redis://h"}
    for kind in ("cc", "cc_admin", "customer", "mitra", "any"):
        assert config.JWT_SECRET in config.required_for(kind, env)
    assert config.required_for("scheduler", env)[-2:] == config.SCHEDULER_CALLER
    assert config.SCHEDULER_CALLER[0] not in config.required_for("scheduler", {"SWEEP_AUTH": "none"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VALKEY_URL": "rediss://10.0.0.3:6379"}, "no CA is configured"),
        ({"VALKEY_URL": "rediss://h", "VALKEY_CA_CERT": "not a pem"}, "VALKEY_CA_CERT is not a PEM"),
        ({"VALKEY_URL": "rediss://h", "VALKEY_CA_FILE": "/nonexistent/ca.pem"}, "does not exist"),
        ({"VALKEY_URL": "redis://h", "VALKEY_CA_FILE": "/etc/ca.pem"}, "not rediss://"),
    ],
)
def test_a_mis_set_valkey_tls_url_fails_the_cold_start(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_checking_the_valkey_ca_at_cold_start_never_loads_the_system_trust_store(monkeypatch):
    # Each endpoint declaration of a group's main.py parses the config (21 in the admin group):
    # loading the system store there cost ~30 ms of CPU each, ~0.6 s per cold start.
    import ssl

    from tests.integration.test_valkey_tls import authority

    def system_store(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the CA check loaded the system trust store")

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", system_store)
    monkeypatch.setattr(ssl.SSLContext, "set_default_verify_paths", system_store)
    Settings.from_env({"VALKEY_URL": "rediss://10.0.0.3:6379", "VALKEY_CA_CERT": authority("memorystore-ca").pem})


def test_a_valkey_tls_url_with_its_ca_builds_a_verifying_client():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from shared.valkey import make_client

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "memorystore-ca")])
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    settings = Settings.from_env({"VALKEY_URL": "rediss://10.0.0.3:6379", "VALKEY_CA_CERT": pem})
    client = make_client(settings)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_data"] == pem and kwargs["ssl_cert_reqs"] == "required"


def test_manifest_rejects_hand_lists_and_unknown_keys():
    raw = {"function": [{"name": "a-a", "group": "g", "entry_point": "a", "method": "GET", "route": "/a", "env": []}]}
    with pytest.raises(ValueError, match="derived"):
        manifest.parse(raw)
    raw["function"][0] = {**raw["function"][0], "extra_thing": 1}
    raw["function"][0].pop("env")
    with pytest.raises(ValueError, match="extra_thing"):
        manifest.parse(raw)


def test_a_path_served_by_several_functions_lists_every_method():
    m = manifest.load()
    put = m.by_entry_point("app_config_put")
    assert m.methods_on_path(put) == m.methods_on_path(m.by_entry_point("app_config_get")) == ("GET", "PUT")


def test_every_secret_the_plan_mounts_is_pinned_to_a_version_never_latest(cfg):
    # An env-var secret at :latest is resolved by each instance when it starts, so during a
    # rollout (or any scale-up) instances of one deploy would hold different keys.
    plan = _real_plan(cfg)
    mounts = [m for fp in plan.functions for m in fp.secrets.values()]
    mounts += [a for cmd in plan.migration for a in cmd if a.startswith("--set-secrets=")]
    assert mounts and not any(m.endswith(":latest") for m in mounts)
    assert plan.function("auth-refresh").secrets["AUTH_JWT_SECRET"] == "AUTH_JWT_SECRET:1"


def test_a_rotation_is_deployed_by_bumping_the_pinned_version(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('[secret_versions]\nAUTH_JWT_SECRET = "2"\nAUTH_JWT_PREVIOUS_SECRETS = "3"\n')
    fp = _real_plan(deploy.load_config(PROJECT, REGION, override)).function("auth-refresh")
    assert fp.secrets["AUTH_JWT_SECRET"] == "AUTH_JWT_SECRET:2"
    assert fp.secrets["AUTH_JWT_PREVIOUS_SECRETS"] == "AUTH_JWT_PREVIOUS_SECRETS:3"


def test_a_secret_without_a_pinned_version_is_refused(cfg):
    unpinned = replace(cfg, secret_versions={k: v for k, v in cfg.secret_versions.items() if k != "OTP_HMAC_SECRET"})
    with pytest.raises(deploy.DeployRefused, match=r"OTP_HMAC_SECRET.*secret_versions"):
        _real_plan(unpinned)
