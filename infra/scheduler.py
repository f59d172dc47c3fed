"""Cloud Scheduler jobs for the sweeps, built from the manifest and synced idempotently.

One job per sweep (a manifest entry with `schedule_env`): cron from the sweep's cadence
(the deployment's value of `schedule_env`, else that setting's default in shared.config), an HTTP POST to
the sweep's route on its function URL (`https://REGION-PROJECT.cloudfunctions.net/NAME/sweeps/x`)
with an OIDC token for the scheduler service account and the audience the function checks
(SCHEDULER_AUDIENCE, the function URL), and an attempt deadline and retries that all end
within one interval (`attempts_within`).

Cloud Scheduler fires at most once a minute, so a cadence under 60 s becomes "every minute"
and the sweep runs several passes inside one invocation. A cadence that does not divide the
hour (or the day) is rounded down to one that does, so the job never runs less often than
asked; sweeps are idempotent, running a little more often costs nothing.

`sync()` creates missing jobs, updates jobs whose spec changed and leaves equal ones alone,
so running the deploy twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from google.api_core import exceptions as api_exceptions
from google.cloud import scheduler_v1
from google.protobuf import field_mask_pb2

from shared import config, manifest

# The Job fields this tool owns; anything else on an existing job (state, status) is left alone.
MANAGED_FIELDS = ("description", "schedule", "time_zone", "http_target", "retry_config", "attempt_deadline")

MIN_DEADLINE_SECONDS = 15  # Cloud Scheduler's bounds for HTTP targets
MAX_DEADLINE_SECONDS = 1800


MAX_RETRIES = 2
BACKOFF_SECONDS = (5, 10, 20)  # min backoff, doubled up to the max: the waits between attempts


def attempts_within(interval: int, timeout: int) -> tuple[int, int]:
    """(attempt deadline, retry count) whose attempts, deadlines and backoffs fit in `interval`.

    "As a general rule, execution n + 1 of a job will not begin until execution n has
    finished" (Job.schedule, https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs),
    and a run lasts until its last attempt ends. The deadline is the function's timeout plus
    15 s (its cold start), but never more than one interval: when it is shorter than the
    sweep, Scheduler stops waiting while the function finishes on its own, and the next run
    finds the sweep's lock held and returns. Retries are kept only while they still fit.
    """
    deadline = max(MIN_DEADLINE_SECONDS, min(timeout + 15, MAX_DEADLINE_SECONDS, interval))
    retries = 0
    for count in range(1, MAX_RETRIES + 1):
        waits = sum(BACKOFF_SECONDS[min(n, len(BACKOFF_SECONDS) - 1)] for n in range(count))
        if deadline * (count + 1) + waits <= interval:
            retries = count
    return deadline, retries


def function_url(project: str, region: str, name: str) -> str:
    """The HTTPS URL of a Cloud Functions (gen2) function; also the OIDC audience of its callers."""
    return f"https://{region}-{project}.cloudfunctions.net/{name}"


def cadence_seconds(fn: manifest.Function, env: Mapping[str, str]) -> int:
    """How often the sweep should run: the deployment's value of its schedule_env, else the default."""
    if fn.schedule_env is None:
        raise ValueError(f"{fn.name} is not a sweep (no schedule_env)")
    seconds = int(env.get(fn.schedule_env) or config.default(fn.schedule_env))
    if seconds < 1:
        raise ValueError(f"{fn.name}: {fn.schedule_env} must be at least 1 second, got {seconds}")
    return seconds


def _divisor_at_most(value: int, whole: int) -> int:
    return max(d for d in range(1, whole + 1) if whole % d == 0 and d <= value)


def cron_for(seconds: int) -> tuple[str, int]:
    """(cron expression, the interval it really fires at in seconds) for a cadence in seconds."""
    minutes = seconds // 60
    if minutes <= 1:
        return "* * * * *", 60
    if minutes < 60:
        step = _divisor_at_most(minutes, 60)
        return f"*/{step} * * * *", step * 60
    hours = minutes // 60
    if hours < 24:
        step = _divisor_at_most(hours, 24)
        return ("0 * * * *" if step == 1 else f"0 */{step} * * *"), step * 3600
    return "0 0 * * *", 86400


@dataclass(frozen=True)
class JobSettings:
    """Deployment-wide settings of the sweep jobs."""

    project: str
    region: str
    service_account: str  # the scheduler's identity: the only invoker of the sweep functions
    time_zone: str = "Etc/UTC"
    audience: str | None = None  # None: each function's own URL

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"


def job_for(fn: manifest.Function, settings: JobSettings, env: Mapping[str, str] | None = None) -> scheduler_v1.Job:
    """The Cloud Scheduler job that invokes one sweep function."""
    seconds = cadence_seconds(fn, env or {})
    schedule, interval = cron_for(seconds)
    url = function_url(settings.project, settings.region, fn.name)
    # The function answers its route at the root of its own URL (docs/deployment.md): the bare URL is a 404.
    uri = url + fn.route
    deadline, retries = attempts_within(interval, fn.timeout)
    passes = f"; {max(1, 60 // seconds)} passes per run" if seconds < 60 else ""
    return scheduler_v1.Job(
        name=f"{settings.parent}/jobs/{fn.name}",
        description=f"{fn.method} {fn.route} every {seconds}s ({fn.schedule_env}){passes}",
        schedule=schedule,
        time_zone=settings.time_zone,
        http_target=scheduler_v1.HttpTarget(
            uri=uri,
            http_method=scheduler_v1.HttpMethod[fn.method],
            headers={"Content-Type": "application/json"},
            body=b"{}",
            oidc_token=scheduler_v1.OidcToken(
                service_account_email=settings.service_account, audience=settings.audience or url
            ),
        ),
        # Delivery is at-least-once and the sweeps are idempotent and locked, so a retry is
        # safe; every attempt, deadline and backoff of a run ends within one interval
        # (attempts_within), so a failing or slow run never delays the next one.
        retry_config=scheduler_v1.RetryConfig(
            retry_count=retries,
            max_retry_duration=timedelta(seconds=interval),
            min_backoff_duration=timedelta(seconds=BACKOFF_SECONDS[0]),
            max_backoff_duration=timedelta(seconds=BACKOFF_SECONDS[-1]),
            max_doublings=len(BACKOFF_SECONDS) - 1,
        ),
        attempt_deadline=timedelta(seconds=deadline),
    )


def sweeps(functions: Iterable[manifest.Function]) -> list[manifest.Function]:
    """The deployable sweeps among `functions`."""
    return [fn for fn in functions if fn.is_sweep and not fn.test_only]


def job_specs(
    functions: Iterable[manifest.Function],
    settings: JobSettings,
    env: Mapping[str, str] | None = None,
) -> list[scheduler_v1.Job]:
    """One job per deployable sweep, in manifest order."""
    return [job_for(fn, settings, env) for fn in sweeps(functions)]


def describe(job: scheduler_v1.Job) -> str:
    """The job as JSON (enums by name), as the dry run prints it."""
    text: str = scheduler_v1.Job.to_json(job, use_integers_for_enums=False, indent=2)
    return text


class SchedulerClient(Protocol):
    """The part of google.cloud.scheduler_v1.CloudSchedulerClient that sync() uses."""

    def get_job(self, *, name: str) -> scheduler_v1.Job: ...

    def create_job(self, *, parent: str, job: scheduler_v1.Job) -> scheduler_v1.Job: ...

    def update_job(self, *, job: scheduler_v1.Job, update_mask: field_mask_pb2.FieldMask) -> scheduler_v1.Job: ...


def _managed(job: scheduler_v1.Job) -> dict[str, Any]:
    data = scheduler_v1.Job.to_dict(job)
    return {name: data.get(name) for name in MANAGED_FIELDS}


def sync(client: SchedulerClient, jobs: Iterable[scheduler_v1.Job]) -> list[tuple[str, str]]:
    """Create or update each job; return (job name, "created" | "updated" | "unchanged")."""
    results: list[tuple[str, str]] = []
    for job in jobs:
        parent = job.name.rsplit("/jobs/", 1)[0]
        try:
            existing = client.get_job(name=job.name)
        except api_exceptions.NotFound:
            client.create_job(parent=parent, job=job)
            results.append((job.name, "created"))
            continue
        if _managed(existing) == _managed(job):
            results.append((job.name, "unchanged"))
            continue
        client.update_job(job=job, update_mask=field_mask_pb2.FieldMask(paths=list(MANAGED_FIELDS)))
        results.append((job.name, "updated"))
    return results


def client() -> SchedulerClient:
    """A real Cloud Scheduler client (Application Default Credentials)."""
    real: SchedulerClient = scheduler_v1.CloudSchedulerClient()
    return real
