"""Cloud Scheduler job specs for the sweeps, and their idempotent create/update."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import scheduler_v1

from infra import deploy, scheduler
from shared import manifest

PROJECT, REGION = "bestie-prod", "asia-southeast2"
SCHEDULER_SA = f"bestie-scheduler@{PROJECT}.iam.gserviceaccount.com"

# The four sweeps of the spec, as the sweeps group declares them.
SWEEPS = {
    "sweep-auto-offline": ("MITRA_AUTO_OFFLINE_SWEEP_SECONDS", 30, "* * * * *"),
    "sweep-heartbeat-mirror": ("HEARTBEAT_MIRROR_INTERVAL_SECONDS", 60, "* * * * *"),
    "sweep-availability-reseed": ("AVAILABILITY_RESEED_SWEEP_SECONDS", 300, "*/5 * * * *"),
    "sweep-session-expiry": ("SESSION_EXPIRY_SWEEP_SECONDS", 30, "* * * * *"),
}

SAMPLE = manifest.parse(
    {
        "function": [
            {"name": "healthz", "group": "admin", "entry_point": "healthz", "method": "GET", "route": "/healthz"},
            *(
                {
                    "name": name,
                    "group": "sweeps",
                    "entry_point": name.removeprefix("sweep-").replace("-", "_"),
                    "method": "POST",
                    "route": "/sweeps/" + name.removeprefix("sweep-"),
                    "auth": "scheduler",
                    "schedule_env": env,
                    "timeout": 120,
                }
                for name, (env, seconds, _) in SWEEPS.items()
            ),
        ],
    }
)


class FakeScheduler:
    """An in-memory stand-in for CloudSchedulerClient (get/create/update), recording calls."""

    def __init__(self) -> None:
        self.jobs: dict[str, scheduler_v1.Job] = {}
        self.calls: list[str] = []

    def get_job(self, *, name):
        self.calls.append("get")
        if name not in self.jobs:
            raise api_exceptions.NotFound(name)
        return scheduler_v1.Job(self.jobs[name], state=scheduler_v1.Job.State.ENABLED)

    def create_job(self, *, parent, job):
        self.calls.append("create")
        assert job.name.startswith(parent + "/jobs/")
        self.jobs[job.name] = job
        return job

    def update_job(self, *, job, update_mask):
        self.calls.append("update")
        assert set(update_mask.paths) <= set(scheduler.MANAGED_FIELDS)
        self.jobs[job.name] = job
        return job


def _dry_run_jobs(functions=SAMPLE.functions, env_file=None):
    config = deploy.load_config(PROJECT, REGION, env_file)
    return deploy.plan(functions, config, {}).jobs


def test_dry_run_has_one_job_per_sweep_with_oidc_service_account_and_audience():
    jobs = {job.name.rsplit("/", 1)[1]: job for job in _dry_run_jobs()}
    assert set(jobs) == set(SWEEPS)
    for name, job in jobs.items():
        url = f"https://{REGION}-{PROJECT}.cloudfunctions.net/{name}"
        assert job.name == f"projects/{PROJECT}/locations/{REGION}/jobs/{name}"
        # The function answers its route at the root of its own URL: the bare URL would be a 404.
        assert job.http_target.uri == url + "/sweeps/" + name.removeprefix("sweep-")
        assert job.http_target.http_method == scheduler_v1.HttpMethod.POST
        assert job.http_target.oidc_token.service_account_email == SCHEDULER_SA
        assert job.http_target.oidc_token.audience == url
        fn = next(f for f in manifest.load().functions if f.name == name)
        _, interval = scheduler.cron_for(scheduler.cadence_seconds(fn, {}))
        # The function's timeout + 15 s (its cold start), but never past the next run.
        assert job.attempt_deadline.total_seconds() == min(fn.timeout + 15, interval)
        # Retries only where they still end within the interval: the every-minute sweeps have
        # none (the next run is their retry), the five-minute reseed keeps one.
        assert job.retry_config.retry_count == (0 if interval == 60 else 1), name


def test_cron_matches_the_cadence_and_sub_minute_sweeps_run_every_minute():
    for job in _dry_run_jobs():
        assert job.schedule == SWEEPS[job.name.rsplit("/", 1)[1]][2]


def test_the_deployment_value_of_the_cadence_env_wins(tmp_path):
    override = tmp_path / "deploy.toml"
    override.write_text('[env]\nAVAILABILITY_RESEED_SWEEP_SECONDS = "600"\n')
    jobs = {job.name.rsplit("/", 1)[1]: job for job in _dry_run_jobs(env_file=override)}
    assert jobs["sweep-availability-reseed"].schedule == "*/10 * * * *"


@pytest.mark.parametrize(
    ("seconds", "cron", "interval"),
    [
        (1, "* * * * *", 60),
        (30, "* * * * *", 60),
        (60, "* * * * *", 60),
        (90, "* * * * *", 60),
        (300, "*/5 * * * *", 300),
        (420, "*/6 * * * *", 360),  # 7 does not divide the hour: run more often, never less
        (3600, "0 * * * *", 3600),
        (7200, "0 */2 * * *", 7200),
        (5 * 3600, "0 */4 * * *", 4 * 3600),
        (2 * 86400, "0 0 * * *", 86400),
    ],
)
def test_cron_for_cadence(seconds, cron, interval):
    assert scheduler.cron_for(seconds) == (cron, interval)


def test_every_sweep_of_the_real_manifest_gets_exactly_one_job():
    sweeps = [fn for fn in manifest.load().functions if fn.is_sweep and not fn.test_only]
    jobs = _dry_run_jobs(manifest.load().functions)
    assert [job.name.rsplit("/", 1)[1] for job in jobs] == [fn.name for fn in sweeps]
    for job, fn in zip(jobs, sweeps, strict=True):
        assert job.http_target.oidc_token.service_account_email == SCHEDULER_SA
        # The token is for the function's URL; the request goes to the sweep's route on it.
        assert job.http_target.uri == job.http_target.oidc_token.audience + fn.route


def test_sync_creates_missing_jobs_then_changes_nothing_on_a_second_run():
    fake = FakeScheduler()
    jobs = _dry_run_jobs()
    assert {action for _, action in scheduler.sync(fake, jobs)} == {"created"}
    fake.calls.clear()
    assert {action for _, action in scheduler.sync(fake, _dry_run_jobs())} == {"unchanged"}
    assert set(fake.calls) == {"get"}


def test_sync_updates_a_job_whose_cadence_changed(tmp_path):
    fake = FakeScheduler()
    scheduler.sync(fake, _dry_run_jobs())
    override = tmp_path / "deploy.toml"
    override.write_text('[env]\nAVAILABILITY_RESEED_SWEEP_SECONDS = "900"\n')
    results = dict(scheduler.sync(fake, _dry_run_jobs(env_file=override)))
    name = f"projects/{PROJECT}/locations/{REGION}/jobs/sweep-availability-reseed"
    assert results.pop(name) == "updated"
    assert set(results.values()) == {"unchanged"}
    assert fake.jobs[name].schedule == "*/15 * * * *"


def _real_jobs(env: dict[str, str] | None = None) -> list[tuple[manifest.Function, scheduler_v1.Job]]:
    settings = scheduler.JobSettings(project="p", region="r", service_account="s@p.iam.gserviceaccount.com")
    return [(fn, scheduler.job_for(fn, settings, env)) for fn in scheduler.sweeps(manifest.load().functions)]


def _worst_case_seconds(job: scheduler_v1.Job) -> float:
    """Attempt deadline x (retries + 1) plus every backoff between attempts."""
    retry = job.retry_config
    deadline = job.attempt_deadline.total_seconds()
    backoff, waits = retry.min_backoff_duration.total_seconds(), 0.0
    for n in range(retry.retry_count):
        waits += min(backoff, retry.max_backoff_duration.total_seconds())
        if n < retry.max_doublings:
            backoff *= 2
    return deadline * (retry.retry_count + 1) + waits


@pytest.mark.parametrize(
    "env", [{}, {"SESSION_EXPIRY_SWEEP_SECONDS": "600", "AVAILABILITY_RESEED_SWEEP_SECONDS": "3600"}]
)
def test_a_failing_or_slow_sweep_never_delays_the_next_run_past_its_cadence(env):
    # "As a general rule, execution n + 1 of a job will not begin until execution n has
    # finished": a run's attempts, deadlines and backoffs must all end within one interval.
    for fn, job in _real_jobs(env):
        _, interval = scheduler.cron_for(scheduler.cadence_seconds(fn, env))
        assert _worst_case_seconds(job) <= interval, (fn.name, job.attempt_deadline, job.retry_config)
        assert job.retry_config.max_retry_duration.total_seconds() <= interval
        assert job.attempt_deadline.total_seconds() >= scheduler.MIN_DEADLINE_SECONDS
