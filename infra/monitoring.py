"""Alerts and the dashboard as code: log-based metrics, alert policies and one dashboard.

The deploy creates or updates each of these (idempotent: a re-run changes nothing that is
already as written). The log-based metrics count the operational events of shared/oplog.py
and the access lines' `httpRequest.status`; the latency alerts use Cloud Run's own
`request_latencies` metric, since the heartbeat writes no access line for a success.
docs/operations.md has one runbook section per alert, under the anchor named by the alert.

References:
- log-based metrics: https://cloud.google.com/logging/docs/logs-based-metrics and
  `gcloud logging metrics create --config-from-file`
  (https://cloud.google.com/sdk/gcloud/reference/logging/metrics/create);
- alert policies: https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies
  and `gcloud monitoring policies create --policy-from-file`;
- absence conditions: https://cloud.google.com/monitoring/alerts/types-of-conditions#metric-absence;
- Cloud Run metrics: https://cloud.google.com/monitoring/api/metrics_gcp_p_z#gcp-run.

    python -m infra.monitoring [--out build/monitoring]   # write the JSON files the deploy uses
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import Settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "build" / "monitoring"
RESOURCE = 'resource.type="cloud_run_revision"'  # Cloud Run functions (gen2) log as Cloud Run revisions
USER_METRIC = "logging.googleapis.com/user/"
SCHEDULER_PERIOD_SECONDS = 60  # Cloud Scheduler fires at most once a minute (shared/sweeps/runner.py)
RUNBOOK = "docs/operations.md"


@dataclass(frozen=True)
class LogMetric:
    """A log-based metric: a counter of matching entries, or a distribution of one field."""

    name: str
    description: str
    filter: str
    labels: dict[str, str] = field(default_factory=dict)  # label -> field path it is extracted from
    value_field: str | None = None  # a distribution of this field instead of a counter

    def config(self) -> dict[str, Any]:
        """The LogMetric resource, as `gcloud logging metrics create --config-from-file` reads it."""
        descriptor: dict[str, Any] = {
            "metricKind": "DELTA",
            "valueType": "DISTRIBUTION" if self.value_field else "INT64",
            "unit": "1",
            "labels": [{"key": key, "valueType": "STRING"} for key in self.labels],
        }
        body: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "filter": self.filter,
            "metricDescriptor": descriptor,
            "labelExtractors": {key: f"EXTRACT({path})" for key, path in self.labels.items()},
        }
        if self.value_field:
            body["valueExtractor"] = f"EXTRACT({self.value_field})"
            body["bucketOptions"] = {"exponentialBuckets": {"numFiniteBuckets": 20, "growthFactor": 2, "scale": 1}}
        return body


def _event(*names: str) -> str:
    either = " OR ".join(f'jsonPayload.event="{name}"' for name in names)
    return f"{RESOURCE} AND ({either})" if len(names) > 1 else f"{RESOURCE} AND {either}"


METRICS: tuple[LogMetric, ...] = (
    LogMetric(
        "bestie/sweep_failures",
        "Sweep passes that aborted or invocations that raised (shared/oplog.py).",
        _event("sweep.aborted", "sweep.failed"),
        {"sweep": "jsonPayload.sweep"},
    ),
    LogMetric(
        "bestie/sweep_finished",
        "Sweep invocations that completed; an absence alert watches each sweep.",
        _event("sweep.finished"),
        {"sweep": "jsonPayload.sweep"},
    ),
    LogMetric("bestie/breaker_tripped", "Auto-offline passes that offlined nobody.", _event("sweep.breaker_tripped")),
    LogMetric(
        "bestie/mirror_drift",
        "Mitras the reseed found different in the mirror (distribution per reseed).",
        _event("mirror.drift_healed"),
        value_field="jsonPayload.drift",
    ),
    LogMetric(
        "bestie/mirror_repair_failed",
        "Failed repairs of the mirror's access marks: instances not trusting the mirror.",
        _event("mirror.repair_failed"),
        {"reason": "jsonPayload.reason"},
    ),
    LogMetric(
        "bestie/db_pool_exhausted", "Requests that found no free Postgres connection.", _event("db.pool_exhausted")
    ),
    # The functions' own access lines (shared/http.py), not Cloud Run's request log, which has
    # no jsonPayload: counting both would count each request twice.
    LogMetric(
        "bestie/http_503",
        "Requests answered 503 (Postgres or Valkey unavailable, pool exhausted).",
        f"{RESOURCE} AND jsonPayload.status=503",
        {"function": "jsonPayload.function"},
    ),
    LogMetric(
        "bestie/http_5xx",
        "Requests answered with a server error other than 503.",
        f"{RESOURCE} AND jsonPayload.status>=500 AND jsonPayload.status!=503",
        {"function": "jsonPayload.function"},
    ),
    LogMetric(
        "bestie/push_failed",
        "Push sends that failed (one line per push kind and FCM error code), and pushes dropped.",
        _event("push.failed", "push.dropped"),
        {"error": "jsonPayload.error"},
    ),
    LogMetric(
        "bestie/sms_sent", "OTP SMS handed to the provider.", _event("sms.sent"), {"country": "jsonPayload.country"}
    ),
    LogMetric(
        "bestie/sms_foreign",
        "OTP SMS to a number outside Indonesia (SMS pumping shows here first).",
        f'{_event("sms.sent")} AND jsonPayload.country!="ID"',
        {"country": "jsonPayload.country"},
    ),
)


@dataclass(frozen=True)
class Alert:
    """One alert policy: a condition on one metric, and the runbook section it points to."""

    name: str  # the anchor of its runbook section in docs/operations.md
    title: str
    metric_filter: str  # a Monitoring filter selecting the time series
    comparison: str = "COMPARISON_GT"
    threshold: float = 0
    window_seconds: int = 300
    duration_seconds: int = 0
    aligner: str = "ALIGN_SUM"
    reducer: str = "REDUCE_SUM"
    group_by: tuple[str, ...] = ()
    absent: bool = False  # fire when no data arrives for duration_seconds

    def policy(self) -> dict[str, Any]:
        """The AlertPolicy resource, as `gcloud monitoring policies create --policy-from-file` reads it."""
        aggregation: dict[str, Any] = {"alignmentPeriod": f"{self.window_seconds}s", "perSeriesAligner": self.aligner}
        if self.reducer:
            aggregation["crossSeriesReducer"] = self.reducer
            aggregation["groupByFields"] = list(self.group_by)
        condition: dict[str, Any] = {"filter": self.metric_filter, "aggregations": [aggregation]}
        condition["duration"] = f"{self.duration_seconds}s"
        if self.absent:
            kind = "conditionAbsent"
        else:
            kind = "conditionThreshold"
            condition |= {"comparison": self.comparison, "thresholdValue": self.threshold}
        return {
            "displayName": f"bestie: {self.title}",
            "combiner": "OR",
            "conditions": [{"displayName": self.title, kind: condition}],
            "documentation": {
                "content": f"Runbook: {RUNBOOK}#{self.name}",
                "mimeType": "text/markdown",
            },
            "alertStrategy": {"autoClose": "1800s"},
            "userLabels": {"alert": self.name.replace("-", "_")},
        }


def _user(metric: str, extra: str = "") -> str:
    return f'metric.type="{USER_METRIC}{metric}" AND {RESOURCE}{extra}'


def _latency(service: str, threshold_ms: float) -> Alert:
    return Alert(
        f"latency-{service}",
        f"p99 latency of {service} above {threshold_ms:g} ms",
        f'metric.type="run.googleapis.com/request_latencies" AND {RESOURCE}'
        f' AND resource.labels.service_name="{service}"',
        threshold=threshold_ms,
        window_seconds=300,
        duration_seconds=600,
        aligner="ALIGN_PERCENTILE_99",
        reducer="REDUCE_MAX",
    )


# p99 goals of the hot paths, milliseconds (docs/operations.md, SLOs).
LATENCY_GOALS_MS = {"mitra-status-heartbeat": 200.0, "pairing-availability": 200.0, "chat-client-send": 500.0}
DRIFT_THRESHOLD = 100  # mitras out of step in one reseed: more than a crash's worth of lost writes
OTP_PER_HOUR_BASELINE = 2_000
PUSH_FAILURES_PER_5_MIN = 100  # a few dead tokens are normal; a code failing every push is not


def sweep_cadences(settings: Settings | None = None) -> dict[str, int]:
    """Each sweep's invocation period in seconds: its cadence, but at least Scheduler's minute."""
    s = settings or Settings.from_env({})
    cadence = {
        "auto-offline": s.mitra_auto_offline_sweep_seconds,
        "heartbeat-mirror": s.heartbeat_mirror_interval_seconds,
        "availability-reseed": s.availability_reseed_sweep_seconds,
        "session-expiry": s.session_expiry_sweep_seconds,
        "retention": s.retention_sweep_seconds,
    }
    return {name: max(SCHEDULER_PERIOD_SECONDS, seconds) for name, seconds in cadence.items()}


def alerts(settings: Settings | None = None) -> list[Alert]:
    """Every alert policy the deploy creates."""
    found = [
        Alert(
            "sweep-failed",
            "a sweep aborted or failed",
            _user("bestie/sweep_failures"),
            group_by=("metric.label.sweep",),
        ),
        Alert("breaker-tripped", "auto-offline breaker tripped", _user("bestie/breaker_tripped")),
        Alert(
            "reseed-drift",
            f"reseed healed more than {DRIFT_THRESHOLD} mitras",
            _user("bestie/mirror_drift"),
            threshold=DRIFT_THRESHOLD,
            aligner="ALIGN_PERCENTILE_99",
            reducer="REDUCE_MAX",
        ),
        Alert(
            "mirror-untrusted",
            "the mirror has not been trusted for more than 5 minutes",
            _user("bestie/mirror_repair_failed"),
            window_seconds=60,
            duration_seconds=300,  # repairs failing every minute for 5 minutes
            group_by=("metric.label.reason",),
        ),
        Alert("db-unavailable", "Postgres pool exhausted", _user("bestie/db_pool_exhausted")),
        Alert(
            "http-503",
            "503 answers above 1 % of a minute's worth",
            _user("bestie/http_503"),
            threshold=30,
            group_by=("metric.label.function",),
        ),
        Alert(
            "http-5xx",
            "server errors in a function",
            _user("bestie/http_5xx"),
            threshold=5,
            group_by=("metric.label.function",),
        ),
        Alert(
            "otp-volume",
            f"more than {OTP_PER_HOUR_BASELINE} OTP SMS in an hour",
            _user("bestie/sms_sent"),
            threshold=OTP_PER_HOUR_BASELINE,
            window_seconds=3600,
        ),
        Alert("otp-foreign", "OTP SMS to a country outside Indonesia", _user("bestie/sms_foreign")),
        Alert(
            "push-failures",
            f"more than {PUSH_FAILURES_PER_5_MIN} push failures in 5 minutes",
            _user("bestie/push_failed"),
            threshold=PUSH_FAILURES_PER_5_MIN,
            group_by=("metric.label.error",),
        ),
    ]
    for sweep, period in sweep_cadences(settings).items():
        found.append(
            Alert(
                f"sweep-absent-{sweep}",
                f"{sweep} has not finished for 3x its cadence",
                _user("bestie/sweep_finished", f' AND metric.label.sweep="{sweep}"'),
                window_seconds=period,
                duration_seconds=3 * period,
                absent=True,
            )
        )
    found += [_latency(service, ms) for service, ms in LATENCY_GOALS_MS.items()]
    return found


def dashboard(settings: Settings | None = None) -> dict[str, Any]:
    """One dashboard: a chart per alert's metric, in the order of the runbook."""
    tiles = []
    for index, alert in enumerate(alerts(settings)):
        aggregation = {"alignmentPeriod": f"{alert.window_seconds}s", "perSeriesAligner": alert.aligner}
        chart = {
            "title": alert.title,
            "xyChart": {
                "dataSets": [
                    {
                        "timeSeriesQuery": {
                            "timeSeriesFilter": {"filter": alert.metric_filter, "aggregation": aggregation}
                        }
                    }
                ],
                "thresholds": [] if alert.absent else [{"value": alert.threshold}],
            },
        }
        tiles.append({"xPos": (index % 2) * 6, "yPos": (index // 2) * 4, "width": 6, "height": 4, "widget": chart})
    return {"displayName": "bestie: operations", "mosaicLayout": {"columns": 12, "tiles": tiles}}


def write(out: Path = DEFAULT_OUT, settings: Settings | None = None) -> list[Path]:
    """Write every metric, policy and the dashboard as JSON under `out`; return the files."""
    written = []
    for folder, items in (
        ("metrics", {m.name.replace("/", "_"): m.config() for m in METRICS}),
        ("alerts", {a.name: a.policy() for a in alerts(settings)}),
    ):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for name, body in items.items():
            path = out / folder / f"{name}.json"
            path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
            written.append(path)
    path = out / "dashboard.json"
    path.write_text(json.dumps(dashboard(settings), indent=2, sort_keys=True) + "\n")
    return [*written, path]


@dataclass(frozen=True)
class Ensure:
    """Create-or-update of one resource: look it up, then update what is found or create it."""

    what: str
    find: list[str]  # prints the resource name when it exists, nothing when it does not
    create: list[str]
    update: list[str]  # `{found}` is replaced by what `find` printed

    def describe(self) -> str:
        """One dry-run line."""
        return f"#   ensure {self.what}: {' '.join(self.create)}"


def ensure_steps(project: str, out: Path = DEFAULT_OUT) -> list[Ensure]:
    """The idempotent steps that make the project's metrics, policies and dashboard equal to `out`."""
    steps = []
    for metric in METRICS:
        path = out / "metrics" / f"{metric.name.replace('/', '_')}.json"
        base = ["gcloud", "logging", "metrics"]
        steps.append(
            Ensure(
                f"log metric {metric.name}",
                [*base, "list", f"--filter=name={metric.name}", "--format=value(name)", f"--project={project}"],
                [*base, "create", metric.name, f"--config-from-file={path}", f"--project={project}"],
                [*base, "update", metric.name, f"--config-from-file={path}", f"--project={project}"],
            )
        )
    for alert in alerts():
        path = out / "alerts" / f"{alert.name}.json"
        base = ["gcloud", "monitoring", "policies"]
        label = alert.name.replace("-", "_")
        steps.append(
            Ensure(
                f"alert policy {alert.name}",
                [*base, "list", f"--filter=userLabels.alert={label}", "--format=value(name)", f"--project={project}"],
                [*base, "create", f"--policy-from-file={path}", f"--project={project}"],
                [*base, "update", "{found}", f"--policy-from-file={path}", f"--project={project}"],
            )
        )
    base = ["gcloud", "monitoring", "dashboards"]
    title = dashboard()["displayName"]
    steps.append(
        Ensure(
            "dashboard",
            [*base, "list", f"--filter=displayName='{title}'", "--format=value(name)", f"--project={project}"],
            [*base, "create", f"--config-from-file={out / 'dashboard.json'}", f"--project={project}"],
            [*base, "update", "{found}", f"--config-from-file={out / 'dashboard.json'}", f"--project={project}"],
        )
    )
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
