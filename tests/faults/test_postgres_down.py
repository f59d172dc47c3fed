"""Postgres unreachable: the Valkey-only hot paths keep working, everything else is a clear 503."""

from __future__ import annotations

from dataclasses import replace

import pytest

from infra.embedded import free_port
from shared.context import AppContext
from tests.support.helpers import installed
from tests.support.pairing_support import customer, online_mitras


@pytest.fixture
def postgres_down(isolated_ctx: AppContext, clock):
    """Tokens and a seeded mirror made while Postgres was up, then a context whose Postgres is gone."""
    (mitra_id, mitra_headers), _ = online_mitras(isolated_ctx, 2)
    _, customer_headers = customer(isolated_ctx)
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/bestie"
    with installed(AppContext(replace(isolated_ctx.settings, database_url=dead), clock=clock)):
        yield mitra_id, mitra_headers, customer_headers


def test_heartbeat_keeps_working_without_postgres(call, postgres_down):
    _, mitra_headers, _ = postgres_down
    resp = call("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=mitra_headers)
    assert resp.status_code == 200 and resp.json["online"] is True


def test_the_beacon_keeps_working_without_postgres(call, postgres_down):
    _, _, customer_headers = postgres_down
    resp = call("pairing_availability").get("/api/client/availability", headers=customer_headers)
    assert resp.status_code == 200 and resp.json["available"] == 2


def test_routes_that_need_postgres_answer_503_database_unavailable(call, postgres_down):
    _, mitra_headers, customer_headers = postgres_down
    answers = [
        call("auth_anonymous").post("/api/shared/auth/anonymous"),
        call("pairing_request").post("/api/client/chat-sessions", json={}, headers=customer_headers),
        call("mitra_status_offline").post("/api/mitra/status/offline", headers=mitra_headers),
    ]
    for resp in answers:
        assert resp.status_code == 503, resp.json
        assert resp.json["error"]["code"] == "DATABASE_UNAVAILABLE"
