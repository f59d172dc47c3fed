"""Sweep functions over HTTP: Scheduler OIDC at the door, retries of one schedule time run once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared import availability
from shared.context import AppContext
from tests.support.helpers import installed
from tests.support.loopback import RsaKey, StubServer, google_claims
from tests.support.mirror_state import new_mitra

AUDIENCE = "https://sweeps.example.test"
SA = "scheduler@bestie-prod.iam.gserviceaccount.com"


@pytest.fixture
def key() -> RsaKey:
    return RsaKey()


@pytest.fixture
def oidc_ctx(isolated_ctx: AppContext, key: RsaKey, clock):
    with StubServer() as certs:  # Google's certs endpoint, on loopback
        certs.routes["/certs"] = (200, key.certs(), 0.0)
        settings = replace(
            isolated_ctx.settings,
            sweep_auth="oidc",
            google_certs_url=certs.url + "/certs",
            scheduler_audience=AUDIENCE,
            scheduler_service_account=SA,
            mitra_auto_offline_sweep_seconds=60,
        )
        with installed(AppContext(settings, clock=clock)) as ctx:
            yield ctx


def _auth(key: RsaKey, **overrides) -> dict[str, str]:
    return {"Authorization": "Bearer " + key.sign({**google_claims(AUDIENCE, SA), **overrides})}


def test_scheduler_token_runs_the_sweep_and_reports_counts(call, oidc_ctx, key, clock):
    availability.seed_from_postgres(oidc_ctx)
    mid = new_mitra(oidc_ctx)
    availability.set_online(oidc_ctx, mid, "test")
    clock.advance(120)
    resp = call("sweep_auto_offline").post("/sweeps/auto-offline", headers=_auth(key))
    assert resp.status_code == 200
    assert resp.json["ran"] is True and resp.json["passes"] == 1 and resp.json["offlined"] == 1


@pytest.mark.parametrize(
    "entry,route",
    [
        ("sweep_auto_offline", "/sweeps/auto-offline"),
        ("sweep_heartbeat_mirror", "/sweeps/heartbeat-mirror"),
        ("sweep_availability_reseed", "/sweeps/availability-reseed"),
        ("sweep_session_expiry", "/sweeps/session-expiry"),
    ],
)
def test_every_sweep_refuses_callers_without_a_scheduler_token(call, oidc_ctx, key, entry, route):
    client = call(entry)
    assert client.post(route).status_code == 401
    assert client.post(route, headers=_auth(key, aud="https://other.example")).status_code == 401
    wrong = client.post(route, headers=_auth(key, email="intruder@evil.iam.gserviceaccount.com"))
    assert wrong.status_code == 403 and wrong.json["error"]["code"] == "OIDC_WRONG_CALLER"


def test_a_retried_delivery_with_the_same_schedule_time_does_the_work_once(call, oidc_ctx, key):
    headers = {**_auth(key), "X-CloudScheduler-ScheduleTime": "2026-11-28T10:05:00Z"}
    client = call("sweep_availability_reseed")
    first = client.post("/sweeps/availability-reseed", headers=headers)
    retry = client.post("/sweeps/availability-reseed", headers=headers)
    assert first.json["ran"] is True and first.json["reseeded"] == 1
    assert retry.status_code == 200 and retry.json == {"ran": False, "passes": 0, "reason": "duplicate_delivery"}


def test_sweep_auth_none_is_accepted_only_in_test_mode_and_is_logged(call, isolated_ctx, caplog):
    assert isolated_ctx.settings.sweep_auth == "none" and isolated_ctx.settings.enable_test_endpoints
    resp = call("sweep_heartbeat_mirror").post("/sweeps/heartbeat-mirror")
    assert resp.status_code == 200 and "ran" in resp.json
    assert any("NOT verified" in r.getMessage() for r in caplog.records)


def test_session_expiry_sweep_expires_a_stale_search_and_reports_it(call, isolated_ctx, clock):
    from shared import pairing
    from shared.auth.principal import Principal
    from tests.support.pairing_support import online_mitras

    online_mitras(isolated_ctx, 1)
    with isolated_ctx.db.transaction() as tx:
        cid = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('c') RETURNING id"))
        tx.commit()
    session = pairing.request_session(isolated_ctx, Principal("customer", cid, "sid"), 30)
    clock.advance(isolated_ctx.settings.pairing_timeout_seconds)
    with installed(AppContext(replace(isolated_ctx.settings, session_expiry_sweep_seconds=60), clock=clock)):
        resp = call("sweep_session_expiry").post("/sweeps/session-expiry")

    assert resp.status_code == 200
    assert resp.json["expired"] == 1 and resp.json["expired_searching"] == 1 and resp.json["passes"] == 1
    status = isolated_ctx.db.scalar("SELECT status FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=session["id"])
    assert status == "expired"


def test_a_sweep_reads_its_caller_from_x_serverless_authorization_and_refuses_a_forged_authorization(
    call, oidc_ctx, key
):
    owner = key.sign(google_claims(AUDIENCE, "owner@bestie-prod.iam.gserviceaccount.com"))
    forged = RsaKey().sign(google_claims(AUDIENCE, SA))
    client = call("sweep_heartbeat_mirror")
    headers = {"X-Serverless-Authorization": f"Bearer {owner}", "Authorization": f"Bearer {forged}"}
    refused = client.post("/sweeps/heartbeat-mirror", headers=headers)
    assert refused.status_code == 403, refused.json
    scheduler = {"X-Serverless-Authorization": _auth(key)["Authorization"]}
    assert client.post("/sweeps/heartbeat-mirror", headers=scheduler).json["ran"] is True
