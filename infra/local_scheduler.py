"""Local stand-in for Cloud Scheduler under `make dev`: fires the deploy plan's own jobs.

Each job of the plan (infra/scheduler.py builds them for the deploy) is fired on the
interval its cron gives (sub-minute cadences fire every minute and the sweep runs several
passes), at its own URI with the function-URL prefix swapped for the gateway's
`/_functions/`, with its method, headers and body, and the headers Cloud Scheduler adds
(X-CloudScheduler-ScheduleTime of the tick, so a retry is deduplicated as in production).
No OIDC token is minted: `make dev` runs with SWEEP_AUTH=none.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

from google.cloud import scheduler_v1

from infra import gateway
from infra.deploy import Plan

log = logging.getLogger("bestie.local_scheduler")

STARTUP_DELAY_SECONDS = 2.0  # let the gateway start listening first


def interval_seconds(job: scheduler_v1.Job) -> int:
    """How often a job's cron fires (the crons infra.scheduler.cron_for writes)."""
    minute, hour = job.schedule.split()[:2]
    if minute.startswith("*/"):
        return int(minute[2:]) * 60
    if minute == "*":
        return 60
    if hour.startswith("*/"):
        return int(hour[2:]) * 3600
    return 3600 if hour == "*" else 86400


def job_id(job: scheduler_v1.Job) -> str:
    return job.name.rsplit("/", 1)[-1]


class LocalScheduler:
    """One daemon thread per job, firing at wall-clock multiples of its interval."""

    def __init__(self, base_url: str, plan: Plan) -> None:
        self.base_url = base_url.rstrip("/")
        self.jobs = list(plan.jobs)
        self.prefix = gateway.function_url_base(plan)
        self._stop = threading.Event()

    def start(self) -> None:
        for job in self.jobs:
            threading.Thread(
                target=self._loop, args=(job, interval_seconds(job)), name=f"scheduler-{job_id(job)}", daemon=True
            ).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, job: scheduler_v1.Job, interval: int) -> None:
        tick = time.time() + STARTUP_DELAY_SECONDS  # first run soon, then on the interval's boundaries
        while not self._stop.wait(max(0.0, tick - time.time())):
            self.fire(job, datetime.fromtimestamp(tick, UTC))
            tick = (int(time.time()) // interval + 1) * interval

    def url_of(self, job: scheduler_v1.Job) -> str:
        uri = job.http_target.uri
        if not uri.startswith(self.prefix):
            raise ValueError(f"{job.name} targets {uri}, not a function of this plan")
        return self.base_url + gateway.FUNCTION_URLS + uri[len(self.prefix) :]

    def fire(self, job: scheduler_v1.Job, scheduled: datetime) -> dict[str, object] | None:
        """Send one job's request like Cloud Scheduler does; return its JSON answer (None on failure)."""
        stamp = scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
        target = job.http_target
        request = urllib.request.Request(  # noqa: S310 (http to our own gateway)
            self.url_of(job),
            method=scheduler_v1.HttpMethod(target.http_method).name,
            data=bytes(target.body),
            headers={
                **dict(target.headers),
                "X-CloudScheduler": "true",
                "X-CloudScheduler-ScheduleTime": stamp,
                "X-CloudScheduler-JobName": job_id(job),
                "User-Agent": "Google-Cloud-Scheduler",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=target_timeout(job)) as resp:  # noqa: S310 (our own loopback URL)
                body: dict[str, object] = json.loads(resp.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("local scheduler: %s failed: %s", job_id(job), exc)
            return None
        log.info("local scheduler: %s", job_id(job), extra={"sweep_result": body, "schedule_time": stamp})
        return body


def target_timeout(job: scheduler_v1.Job) -> float:
    return job.attempt_deadline.total_seconds() if job.attempt_deadline else 60.0
