"""Each alert fires on the log entry its failure really writes.

Every test causes the failure in the code, captures the JSON lines the process writes, turns
each into the LogEntry Cloud Logging makes of it (the special fields lifted out, the rest in
`jsonPayload`: https://cloud.google.com/logging/docs/structured-logging), and evaluates the
filter of the log-based metric behind the alert with infra.logfilter. A renamed event, a
dropped field or a filter that drifted from the code fails here.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infra import monitoring
from infra.embedded import free_port
from infra.logfilter import matches
from shared import availability
from shared.config import Settings
from shared.context import AppContext
from shared.db import Database, DatabaseUnavailable
from shared.log import JsonFormatter
from shared.sweeps import jobs, runner
from tests.support import apps
from tests.support.helpers import FakeClock, installed
from tests.support.mirror_state import new_mitra
from tests.support.pairing_support import customer

LIFTED = ("severity", "httpRequest", "time", "logging.googleapis.com/trace")
REPO = Path(__file__).resolve().parents[2]


def as_log_entry(line: dict[str, Any], service: str = "a-function") -> dict[str, Any]:
    """The LogEntry Cloud Logging makes of one JSON line a Cloud Run function printed."""
    entry = {
        "severity": line.get("severity", "DEFAULT"),
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service}},
        "jsonPayload": {k: v for k, v in line.items() if k not in LIFTED},
    }
    if "httpRequest" in line:
        entry["httpRequest"] = line["httpRequest"]
    return entry


@contextlib.contextmanager
def captured() -> Iterator[list[dict[str, Any]]]:
    """The log entries written inside the block, as Cloud Logging would store them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    entries: list[dict[str, Any]] = []
    try:
        yield entries
    finally:
        root.removeHandler(handler)
        entries += [as_log_entry(json.loads(line)) for line in stream.getvalue().splitlines() if line.strip()]


def metric(name: str) -> monitoring.LogMetric:
    return next(m for m in monitoring.METRICS if m.name == name)


def alert(name: str) -> monitoring.Alert:
    return next(a for a in monitoring.alerts() if a.name == name)


def fired(alert_name: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries the alert's log-based metric counts."""
    policy = alert(alert_name)
    [chosen] = [m for m in monitoring.METRICS if f'{monitoring.USER_METRIC}{m.name}"' in policy.metric_filter]
    return [entry for entry in entries if matches(chosen.filter, entry)]


def extracted(name: str, label: str, entry: dict[str, Any]) -> Any:
    """The value a log-based metric's label extractor takes from `entry`."""
    value: Any = entry
    for part in metric(name).labels[label].split("."):
        value = value[part]
    return value


def _unreachable_valkey(ctx: AppContext) -> AppContext:
    settings = replace(ctx.settings, valkey_url=f"redis://127.0.0.1:{free_port()}/0", valkey_timeout_seconds=0.2)
    return AppContext(settings, clock=ctx.clock)


def test_sweep_failed_fires_when_a_pass_aborts_on_a_valkey_error(isolated_ctx: AppContext):
    with installed(_unreachable_valkey(isolated_ctx)) as ctx, captured() as entries:
        assert jobs.auto_offline_pass(ctx)["abort_reason"] == "valkey_error"
    [entry] = fired("sweep-failed", entries)
    assert extracted("bestie/sweep_failures", "sweep", entry) == "auto-offline"
    assert entry["severity"] == "ERROR"


def test_sweep_failed_fires_when_an_invocation_raises(isolated_ctx: AppContext):
    def broken(_ctx: AppContext, _tx: object) -> runner.PassResult:
        raise RuntimeError("bug")

    with captured() as entries, pytest.raises(RuntimeError):
        runner.invoke(isolated_ctx, runner.Sweep("session-expiry", 60, broken), schedule_time=None, budget_seconds=30)
    [entry] = fired("sweep-failed", entries)
    assert (entry["jsonPayload"]["event"], extracted("bestie/sweep_failures", "sweep", entry)) == (
        "sweep.failed",
        "session-expiry",
    )


@pytest.mark.parametrize("sweep", sorted(monitoring.sweep_cadences()))
def test_each_sweep_absence_alert_watches_the_line_its_sweep_writes_when_it_finishes(isolated_ctx, sweep):
    with captured() as entries:
        runner.invoke(
            isolated_ctx, runner.Sweep(sweep, 60, lambda _ctx, _tx: {}), schedule_time=None, budget_seconds=30
        )
    [entry] = fired(f"sweep-absent-{sweep}", entries)
    assert extracted("bestie/sweep_finished", "sweep", entry) == sweep
    absent = alert(f"sweep-absent-{sweep}")
    assert absent.absent and f'metric.label.sweep="{sweep}"' in absent.metric_filter
    assert absent.duration_seconds == 3 * monitoring.sweep_cadences()[sweep]


def test_breaker_tripped_fires_when_auto_offline_offlines_nobody(isolated_ctx: AppContext, clock: FakeClock):
    availability.seed_from_postgres(isolated_ctx)
    for _ in range(24):
        availability.set_online(isolated_ctx, new_mitra(isolated_ctx), "test")
    clock.advance(isolated_ctx.settings.mitra_heartbeat_stale_seconds + 5)
    with captured() as entries:
        assert jobs.auto_offline_pass(isolated_ctx)["breaker_open"] is True
    [entry] = fired("breaker-tripped", entries)
    assert (entry["jsonPayload"]["stale"], entry["jsonPayload"]["online"]) == (24, 24)


def test_reseed_drift_measures_the_drift_the_reseed_healed(isolated_ctx: AppContext):
    availability.seed_from_postgres(isolated_ctx)
    ids = [new_mitra(isolated_ctx) for _ in range(3)]
    for mitra_id in ids:
        availability.set_online(isolated_ctx, mitra_id, "test")
    isolated_ctx.valkey.delete(isolated_ctx.keys.online)  # the mirror lost what Postgres knows
    with captured() as entries:
        assert jobs.reseed_pass(isolated_ctx)["drift"] > 0
    [entry] = fired("reseed-drift", entries)
    assert entry["jsonPayload"][metric("bestie/mirror_drift").value_field.split(".")[-1]] > 0  # type: ignore[union-attr]


def test_db_unavailable_fires_when_the_pool_is_exhausted(test_env):
    db = Database(replace(Settings.from_env(), db_pool_size=1, db_pool_timeout_seconds=0.1))
    try:
        with db.transaction(), captured() as entries, pytest.raises(DatabaseUnavailable):
            db.scalar("SELECT 1")  # the one connection is held by the block above
    finally:
        db.close()
    [entry] = fired("db-unavailable", entries)
    assert entry["jsonPayload"]["pool_size"] == 1


def test_http_503_fires_on_the_access_line_of_a_request_postgres_could_not_serve(ctx: AppContext):
    dead = replace(ctx.settings, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    with installed(AppContext(dead)), captured() as entries:
        assert apps.client("auth_anonymous").post("/api/shared/auth/anonymous").status_code == 503
    [entry] = fired("http-503", entries)
    assert extracted("bestie/http_503", "function", entry) == "auth-anonymous"
    assert fired("http-5xx", entries) == []  # a 503 is its own alert, not a server error


def test_http_5xx_fires_per_function_on_an_unhandled_error(ctx: AppContext, monkeypatch):
    from shared import pairing

    def bug(*_args: Any, **_kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pairing, "beacon", bug)
    _, headers = customer(ctx)
    with captured() as entries:
        assert apps.client("pairing_availability").get("/api/client/availability", headers=headers).status_code == 500
    [entry] = fired("http-5xx", entries)
    assert extracted("bestie/http_5xx", "function", entry) == "pairing-availability"
    assert entry["httpRequest"]["status"] == 500


def _request_otp(number: str) -> int:
    resp = apps.client("auth_client_otp_request").post("/api/client/auth/otp/request", json={"phone": number})
    return int(resp.status_code)


def test_otp_alerts_count_every_sms_and_single_out_foreign_numbers(isolated_ctx: AppContext):
    with captured() as entries:
        assert _request_otp(f"+62812{uuid.uuid4().int % 10**8:08d}") == 201
    [sent] = fired("otp-volume", entries)
    assert extracted("bestie/sms_sent", "country", sent) == "ID"
    assert fired("otp-foreign", entries) == []
    # A country the operator allowed besides Indonesia still stands out.
    abroad = replace(isolated_ctx.settings, otp_allowed_country_codes=("62", "370"))
    with installed(AppContext(abroad, clock=isolated_ctx.clock)), captured() as entries:
        assert _request_otp(f"+3706{uuid.uuid4().int % 10**7:07d}") == 201
    [foreign] = fired("otp-foreign", entries)
    assert extracted("bestie/sms_foreign", "country", foreign) == "LT"


def test_every_alert_has_a_runbook_section_and_every_user_metric_is_defined():
    runbook = (REPO / "docs" / "operations.md").read_text()
    anchors = {line[4:].strip() for line in runbook.splitlines() if line.startswith("### ")}
    defined = {m.name for m in monitoring.METRICS}
    for policy in monitoring.alerts():
        assert policy.name in anchors, f"docs/operations.md has no section for {policy.name}"
        if monitoring.USER_METRIC in policy.metric_filter:
            name = policy.metric_filter.split(monitoring.USER_METRIC, 1)[1].split('"', 1)[0]
            assert name in defined, policy.name


def test_latency_alerts_watch_functions_the_manifest_deploys():
    from shared import manifest

    names = {fn.name for fn in manifest.load().functions}
    assert set(monitoring.LATENCY_GOALS_MS) <= names


def test_the_files_the_deploy_reads_are_written_and_rerunning_changes_nothing(tmp_path: Path):
    first = {p: p.read_text() for p in monitoring.write(tmp_path)}
    second = {p: p.read_text() for p in monitoring.write(tmp_path)}
    assert first == second and len(first) == len(monitoring.METRICS) + len(monitoring.alerts()) + 1
    steps = monitoring.ensure_steps("proj", tmp_path)
    assert len(steps) == len(first)
    assert all(step.find[-1] == "--project=proj" and "list" in step.find for step in steps)


def test_push_failures_fire_on_an_fcm_error_and_name_its_code(ctx: AppContext):
    from shared import notify, push
    from tests.support.fcm_standin import fcm_installed

    with fcm_installed(ctx), captured() as entries:
        msg = push.message("session_extended", {"type": "session_extended", "session_id": str(uuid.uuid4())}, ctx.now())
        customer_id = str(uuid.uuid4())
        with ctx.db.transaction() as tx:
            tx.execute(
                "INSERT INTO devices (user_type, user_id, fcm_token, platform)"
                " VALUES ('customer', CAST(:u AS uuid), :t, 'android')",
                u=customer_id,
                t=f"unavailable-{uuid.uuid4().hex}",
            )
            tx.commit()
        notify.deliver(ctx, "customer", [customer_id], msg)
    [entry] = fired("push-failures", entries)
    assert extracted("bestie/push_failed", "error", entry) == "UNAVAILABLE"


def test_mirror_untrusted_fires_while_an_instance_cannot_repair_the_mirror(isolated_ctx: AppContext):
    from shared.availability import access

    with installed(_unreachable_valkey(isolated_ctx)) as ctx, captured() as entries:
        assert access.repair(ctx) is False  # Valkey unreachable: the instance keeps answering from Postgres
    [entry] = fired("mirror-untrusted", entries)
    assert extracted("bestie/mirror_repair_failed", "reason", entry) == "valkey_error"
    repaired = [e for e in entries if e["jsonPayload"].get("event") == "mirror.repaired"]
    assert repaired == []
    with captured() as entries:
        assert access.repair(isolated_ctx) is True
    assert fired("mirror-untrusted", entries) == []
    assert [e["jsonPayload"]["event"] for e in entries if "event" in e["jsonPayload"]] == ["mirror.repaired"]
