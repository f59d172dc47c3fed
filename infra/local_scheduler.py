"""Local stand-in for Cloud Scheduler under `make dev`.

Calls every sweep of the manifest over HTTP on the interval its Cloud Scheduler job would
have (the cron from infra.scheduler: sub-minute cadences fire every minute and the function
runs several passes), with the X-CloudScheduler-ScheduleTime header of the tick, so local runs
exercise the same retry-deduplication and pass logic as production.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

from infra.scheduler import cadence_seconds, cron_for
from shared import manifest

log = logging.getLogger("bestie.local_scheduler")

STARTUP_DELAY_SECONDS = 2.0  # let the gateway start listening first


class LocalScheduler:
    """One daemon thread per sweep, firing at wall-clock multiples of its interval."""

    def __init__(self, base_url: str, functions: list[manifest.Function]) -> None:
        self.base_url = base_url.rstrip("/")
        self.sweeps = [fn for fn in functions if fn.is_sweep]
        self._stop = threading.Event()

    def start(self) -> None:
        for fn in self.sweeps:
            interval = cron_for(cadence_seconds(fn, os.environ))[1]
            threading.Thread(target=self._loop, args=(fn, interval), name=f"scheduler-{fn.name}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, fn: manifest.Function, interval: int) -> None:
        tick = time.time() + STARTUP_DELAY_SECONDS  # first run soon, then on the interval's boundaries
        while not self._stop.wait(max(0.0, tick - time.time())):
            self.fire(fn, datetime.fromtimestamp(tick, UTC))
            tick = (int(time.time()) // interval + 1) * interval

    def fire(self, fn: manifest.Function, scheduled: datetime) -> dict[str, object] | None:
        """POST one sweep like Cloud Scheduler does; return its JSON answer (None on failure)."""
        stamp = scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
        request = urllib.request.Request(  # noqa: S310 (http to our own gateway)
            self.base_url + fn.route,
            method=fn.method,
            data=b"",
            headers={
                "X-CloudScheduler-ScheduleTime": stamp,
                "X-CloudScheduler-JobName": fn.name,
                "User-Agent": "Google-Cloud-Scheduler",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=fn.timeout + 5) as resp:  # noqa: S310 (our own loopback URL)
                body: dict[str, object] = json.loads(resp.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("local scheduler: %s failed: %s", fn.name, exc)
            return None
        log.info("local scheduler: %s", fn.name, extra={"sweep_result": body, "schedule_time": stamp})
        return body
