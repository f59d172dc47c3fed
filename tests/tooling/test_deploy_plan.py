"""The deploy plan: gcloud commands per function, invoker bindings, refusals, the dry run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from infra import deploy, scheduler
from infra.deploy import cli, executor
from shared import manifest
from tests.tooling.test_deploy_preflight import complete_project

PROJECT, REGION = "bestie-prod", "asia-southeast2"

SAMPLE = manifest.parse(
    {
        "function": [
            {"name": "healthz", "group": "admin", "entry_point": "healthz", "method": "GET", "route": "/healthz"},
            {
                "name": "auth-client-google",
                "group": "auth",
                "entry_point": "auth_client_google",
                "method": "POST",
                "route": "/api/client/auth/google",
            },
            {
                "name": "client-session-cancel",
                "group": "pairing",
                "entry_point": "cancel_session",
                "method": "POST",
                "route": "/api/client/chat-sessions/:id/cancel",
                "auth": "customer",
                "memory": "512Mi",
                "timeout": 30,
                "concurrency": 1,
                "min_instances": 1,
                "max_instances": 20,
            },
            {
                "name": "sweep-auto-offline",
                "group": "sweeps",
                "entry_point": "auto_offline",
                "method": "POST",
                "route": "/sweeps/auto-offline",
                "auth": "scheduler",
                "schedule_env": "MITRA_AUTO_OFFLINE_SWEEP_SECONDS",
            },
            {
                "name": "test-seed-mitra",
                "group": "admin",
                "entry_point": "test_seed_mitra",
                "method": "POST",
                "route": "/internal/_test/seed-mitra",
                "test_only": True,
            },
        ],
    }
)


@pytest.fixture
def config() -> deploy.Config:
    return deploy.load_config(PROJECT, REGION)


def _plan(config: deploy.Config, functions=SAMPLE.functions, environ=None) -> deploy.Plan:
    return deploy.plan(functions, config, environ or {}, Path("/nonexistent/build"))


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)


def _by_name(plan: deploy.Plan, name: str) -> deploy.FunctionPlan:
    return next(fp for fp in plan.functions if fp.fn.name == name)


def test_test_only_functions_are_never_deployed(config):
    names = [fp.fn.name for fp in _plan(config).functions]
    assert names == ["healthz", "auth-client-google", "client-session-cancel", "sweep-auto-offline"]
    real = _plan(config, manifest.load().functions)
    assert all(not fp.fn.test_only for fp in real.functions)
    assert {fp.fn.name for fp in real.functions} == {fn.name for fn in manifest.load().functions if not fn.test_only}


def test_deploy_command_is_gen2_http_from_the_group_bundle_with_manifest_resources(config):
    argv = _by_name(_plan(config), "client-session-cancel").command
    assert argv[:4] == ["gcloud", "functions", "deploy", "client-session-cancel"]
    assert "--gen2" in argv and "--trigger-http" in argv
    flags = _flags(argv)
    assert flags["runtime"] == "python311"
    assert flags["region"] == REGION and flags["project"] == PROJECT
    assert flags["entry-point"] == "cancel_session"
    assert flags["source"] == "/nonexistent/build/pairing"
    assert flags["service-account"] == f"bestie-functions@{PROJECT}.iam.gserviceaccount.com"
    assert (flags["memory"], flags["timeout"], flags["concurrency"]) == ("512Mi", "30s", "1")
    assert (flags["min-instances"], flags["max-instances"]) == ("1", "20")
    assert flags["vpc-connector"] == f"projects/{PROJECT}/locations/{REGION}/connectors/bestie"
    assert flags["egress-settings"] == "private-ranges-only"
    assert "cpu" not in flags  # concurrency 1 runs on a fractional CPU


def test_every_sweep_runs_on_at_least_one_whole_cpu():
    # At concurrency 1 the CPU follows memory (256Mi: 0.167 vCPU, 512Mi: 0.333,
    # https://cloud.google.com/functions/docs/configuring/memory); the sweeps' figures were
    # measured on full cores, so they get one.
    the_plan = deploy.plan(manifest.load().functions, deploy.load_config(PROJECT, REGION), {}, Path("/x"))
    sweeps = [fp for fp in the_plan.functions if fp.fn.is_sweep]
    assert len(sweeps) >= 4
    for fp in sweeps:
        assert float(_flags(fp.command)["cpu"]) >= 1, fp.fn.name


def test_concurrency_above_one_gets_a_whole_cpu(config):
    flags = _flags(_by_name(_plan(config), "healthz").command)
    assert flags["concurrency"] == "8" and flags["cpu"] == "1"


def test_secrets_come_from_secret_manager_and_the_connector_replaces_database_url(config):
    argv = _by_name(_plan(config), "client-session-cancel").command
    assert _flags(argv)["set-secrets"] == (
        "AUTH_JWT_PREVIOUS_SECRETS=AUTH_JWT_PREVIOUS_SECRETS:1,AUTH_JWT_SECRET=AUTH_JWT_SECRET:1,"
        "VALKEY_URL=VALKEY_URL:1"
    )
    env = _flags(argv)["set-env-vars"]
    assert f"CLOUD_SQL_INSTANCE={PROJECT}:{REGION}:bestie" in env and "DB_IAM_AUTH=1" in env
    assert "AUTH_JWT_SECRET" not in env and "VALKEY_URL" not in env


def test_database_url_secret_is_mounted_without_cloud_sql_and_secret_ids_can_be_renamed(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text(
        '[env]\nCLOUD_SQL_INSTANCE = ""\n[secrets]\nDATABASE_URL = "bestie-db-url"\n'
        '[secret_versions]\n"bestie-db-url" = "4"\n'
    )
    config = deploy.load_config(PROJECT, REGION, override)
    secrets = deploy.function_secrets(SAMPLE.by_entry_point("healthz"), config)
    assert secrets["DATABASE_URL"] == "bestie-db-url:4" and secrets["VALKEY_URL"] == "VALKEY_URL:1"
    assert "DB_PASSWORD" not in secrets


def test_password_auth_to_cloud_sql_mounts_db_password(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('[env]\nDB_IAM_AUTH = "0"\n')
    config = deploy.load_config(PROJECT, REGION, override)
    assert "DB_PASSWORD" in deploy.function_secrets(SAMPLE.by_entry_point("healthz"), config)


def test_env_values_with_commas_switch_the_gcloud_delimiter(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('[env]\nGOOGLE_OAUTH_CLIENT_IDS = "a.apps,b.apps"\n')
    config = deploy.load_config(PROJECT, REGION, override)
    value = _flags(_by_name(_plan(config), "auth-client-google").command)["set-env-vars"]
    assert value[0] == value[2] == "^"
    delimiter = value[1]
    assert delimiter not in "=,@" and delimiter not in value[3:].replace(delimiter, "")
    assert "GOOGLE_OAUTH_CLIENT_IDS=a.apps,b.apps" in value[3:].split(delimiter)


def test_public_routes_allow_unauthenticated_calls_and_check_our_jwt_themselves(config):
    for name in ("healthz", "client-session-cancel"):
        fp = _by_name(_plan(config), name)
        assert "--allow-unauthenticated" in fp.command and fp.after == []


def test_sweeps_are_private_and_only_the_scheduler_account_may_invoke_them(config):
    fp = _by_name(_plan(config), "sweep-auto-offline")
    assert "--no-allow-unauthenticated" in fp.command and "--allow-unauthenticated" not in fp.command
    assert fp.after == [
        [
            *("gcloud", "functions", "add-invoker-policy-binding", "sweep-auto-offline"),
            f"--region={REGION}",
            f"--project={PROJECT}",
            f"--member=serviceAccount:bestie-scheduler@{PROJECT}.iam.gserviceaccount.com",
        ]
    ]


def test_sweep_checks_the_audience_and_account_its_scheduler_job_uses(config):
    plan = _plan(config)
    fp = _by_name(plan, "sweep-auto-offline")
    (job,) = plan.jobs
    assert fp.env["SCHEDULER_AUDIENCE"] == job.http_target.oidc_token.audience
    assert fp.env["SCHEDULER_SERVICE_ACCOUNT"] == job.http_target.oidc_token.service_account_email
    assert "SCHEDULER_AUDIENCE" not in _by_name(plan, "healthz").env


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        ({"ENABLE_TEST_ENDPOINTS": "1"}, "ENABLE_TEST_ENDPOINTS=1"),
        ({"ENABLE_TEST_ENDPOINTS": "true"}, "ENABLE_TEST_ENDPOINTS=true"),
        ({"SWEEP_AUTH": "none"}, "SWEEP_AUTH=none"),
        ({"SWEEP_AUTH": "NONE"}, "SWEEP_AUTH=NONE"),
    ],
)
def test_refuses_to_deploy_from_a_shell_with_dev_only_switches(config, environ, reason):
    with pytest.raises(deploy.DeployRefused, match=reason):
        _plan(config, environ=environ)


@pytest.mark.parametrize("line", ['ENABLE_TEST_ENDPOINTS = "yes"', 'SWEEP_AUTH = "none"'])
def test_refuses_to_deploy_a_config_that_sets_dev_only_switches(tmp_path, line):
    override = tmp_path / "deploy.toml"
    override.write_text(f"[env]\n{line}\n")
    with pytest.raises(deploy.DeployRefused, match="deploy config"):
        _plan(deploy.load_config(PROJECT, REGION, override))


def test_switched_off_dev_settings_do_not_block_a_deploy(config):
    assert _plan(config, environ={"ENABLE_TEST_ENDPOINTS": "0", "SWEEP_AUTH": "oidc"}).functions


def test_a_sweep_open_to_the_public_is_refused(config):
    public_sweep = manifest.parse(
        {
            "function": [
                {
                    "name": "sweep-x",
                    "group": "sweeps",
                    "entry_point": "x",
                    "method": "POST",
                    "route": "/sweeps/x",
                    "auth": "none",
                    "schedule_env": "SESSION_EXPIRY_SWEEP_SECONDS",
                }
            ]
        }
    )
    with pytest.raises(deploy.DeployRefused, match="sweep-x is a sweep"):
        _plan(config, public_sweep.functions)


def test_unknown_deploy_setting_is_an_error(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('vpc_conector = "typo"\n')
    with pytest.raises(deploy.DeployRefused, match="vpc_conector"):
        deploy.load_config(PROJECT, REGION, override)


def test_dry_run_prints_every_command_and_job_and_runs_nothing(monkeypatch, capsys):
    monkeypatch.delenv("ENABLE_TEST_ENDPOINTS", raising=False)
    monkeypatch.delenv("SWEEP_AUTH", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("a dry run must not run anything")

    monkeypatch.setattr(executor.subprocess, "run", forbidden)
    monkeypatch.setattr(cli, "execute", forbidden)
    assert deploy.main(["--project", PROJECT, "--region", REGION, "--dry-run"]) == 0
    out = capsys.readouterr().out
    the_plan = deploy.plan(manifest.load().functions, deploy.load_config(PROJECT, REGION), {})
    for fp in the_plan.functions:
        assert f"gcloud functions deploy {fp.fn.name} " in out
    for job in the_plan.jobs:
        assert scheduler.describe(job) in out
    assert "test-seed-mitra" not in out.split("# 4. Functions")[1].split("# 5.")[0]
    assert '"pathTemplateMatch": "/healthz"' in out


def test_cli_refuses_in_a_dev_shell(monkeypatch, capsys):
    monkeypatch.setenv("ENABLE_TEST_ENDPOINTS", "1")
    assert deploy.main(["--project", PROJECT, "--region", REGION, "--dry-run"]) == 2
    assert "ENABLE_TEST_ENDPOINTS" in capsys.readouterr().err


def test_execute_builds_bundles_then_deploys_binds_and_syncs_jobs(config, tmp_path):
    from tests.tooling.test_deploy_scheduler import FakeScheduler

    plan = deploy.plan(SAMPLE.functions, config, {}, tmp_path)
    ran: list[list[str]] = []
    fake = FakeScheduler()
    deploy.execute(
        plan,
        run=ran.append,
        run_create=ran.append,
        scheduler_client=fake,
        read_secret=lambda project, secret: b"value",
        check_scheduler=lambda p: None,
        read=complete_project(plan),
        find=lambda argv: "",  # a new project: no metric, policy or dashboard exists yet
    )
    deployed = [cmd[2:4] for cmd in ran if cmd[1] != "logging" and cmd[2] not in ("policies", "dashboards")]
    assert deployed == [
        ["jobs", "deploy"],  # the migration job first, and waited for
        ["jobs", "execute"],
        ["deploy", "healthz"],
        ["deploy", "auth-client-google"],
        ["deploy", "client-session-cancel"],
        ["deploy", "sweep-auto-offline"],
        ["add-invoker-policy-binding", "sweep-auto-offline"],
    ]
    assert [cmd[3] for cmd in ran[len(deployed) :]] == ["create"] * len(plan.monitoring)
    assert ran[1][-1] == "--wait"
    assert (tmp_path / "bestie-migrate" / "migrations").is_dir() and (
        tmp_path / "bestie-migrate" / "Procfile"
    ).is_file()
    for group in ("admin", "pairing", "sweeps"):
        assert (tmp_path / group / "main.py").is_file() and (tmp_path / group / "shared" / "functions.json").is_file()
    assert set(fake.jobs) == {job.name for job in plan.jobs}


def test_secret_files_are_mounted_on_every_function(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('[secret_files]\n"/etc/valkey/ca.pem" = "VALKEY_CA"\n')
    plan = _plan(deploy.load_config(PROJECT, REGION, override))
    for fp in plan.functions:
        assert fp.secrets["/etc/valkey/ca.pem"] == "VALKEY_CA:1"
        assert "/etc/valkey/ca.pem=VALKEY_CA:1" in _flags(fp.command)["set-secrets"]


def test_docs_deploy_plan_is_the_current_dry_run_of_the_whole_manifest():
    from infra import readme

    assert readme.PLAN_DOC.read_text() == readme.plan_doc(), "run `python -m infra.readme`"


@pytest.mark.parametrize("line", ['OTP_PROVIDER = "log"', 'OTP_PROVIDER = ""'])
def test_refuses_a_config_whose_otp_provider_would_log_codes(tmp_path, line):
    override = tmp_path / "deploy.toml"
    override.write_text(f"[env]\n{line}\n")
    with pytest.raises(deploy.DeployRefused, match="OTP_PROVIDER"):
        _plan(deploy.load_config(PROJECT, REGION, override))


def test_a_second_deploy_updates_every_metric_policy_and_the_dashboard_and_creates_none(config, tmp_path):
    from infra import monitoring
    from infra.deploy import executor

    plan = deploy.plan(SAMPLE.functions, config, {}, tmp_path)
    assert len(plan.monitoring) == len(monitoring.METRICS) + len(monitoring.alerts()) + 1
    rendered = deploy.render(plan)
    assert all(step.describe() in rendered for step in plan.monitoring)  # the dry run lists each one
    existing: dict[str, str] = {}  # a project's resources: the step's lookup -> the name Google gave

    def run(argv: list[str]) -> None:
        if argv[3] == "create":
            step = next(s for s in plan.monitoring if s.create == argv)
            existing[" ".join(step.find)] = f"projects/p/things/{len(existing)}"

    first = [executor.ensure(step, run, lambda argv: existing.get(" ".join(argv), "")) for step in plan.monitoring]
    made = dict(existing)
    second = [executor.ensure(step, run, lambda argv: existing.get(" ".join(argv), "")) for step in plan.monitoring]
    assert set(first) == {"created"} and set(second) == {"updated"}
    assert existing == made  # nothing new: no duplicate policy or dashboard


def test_a_midtrans_deploy_mounts_the_pinned_server_key_on_the_notification_function(config):
    real = manifest.load().functions
    manual = _flags(_by_name(_plan(config, real), "payments-midtrans-notification").command)["set-secrets"]
    midtrans = dataclasses.replace(config, env={**config.env, "PAYMENT_PROVIDER": "midtrans"})
    the_plan = _plan(midtrans, real)  # a plan that would float a secret's version refuses to build
    secrets = _flags(_by_name(the_plan, "payments-midtrans-notification").command)["set-secrets"]
    assert "MIDTRANS_SERVER_KEY=MIDTRANS_SERVER_KEY:1" in secrets.split(",")
    assert "MIDTRANS_SERVER_KEY" not in manual  # the manual provider needs no Midtrans key
