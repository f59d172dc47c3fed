"""A Valkey that accepts connections but never answers: one bounded wait, then the fallback."""

from __future__ import annotations

import socket
import threading
from dataclasses import replace

import pytest

from shared import availability
from shared.context import AppContext
from tests.support.helpers import installed
from tests.support.pairing_support import customer, online_mitras


class BlackHole:
    """A TCP listener that accepts and reads but never replies (a hung Valkey)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.accepted = 0
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def hung(isolated_ctx: AppContext, clock):
    (mitra_id, mitra_headers), _ = online_mitras(isolated_ctx, 2)
    _, customer_headers = customer(isolated_ctx)
    hole = BlackHole()
    settings = replace(isolated_ctx.settings, valkey_url=hole.url, valkey_timeout_seconds=0.2)
    try:
        with installed(AppContext(settings, clock=clock)) as ctx:
            yield ctx, hole, mitra_id, mitra_headers, customer_headers
    finally:
        hole.close()


def test_reads_fall_back_to_postgres_when_valkey_hangs(hung):
    ctx, hole, mitra_id, _, _ = hung
    assert availability.count_available(ctx)["available"] == 2
    assert availability.count_available(ctx)["source"] == "postgres"
    assert availability.is_mitra_reachable(ctx, mitra_id) is True
    assert hole.accepted >= 1  # the client really tried the hung server


def test_heartbeat_and_beacon_answer_through_a_hung_valkey(call, hung):
    _, _, _, mitra_headers, customer_headers = hung
    beat = call("mitra_status_heartbeat").post("/api/mitra/status/heartbeat", headers=mitra_headers)
    beacon = call("pairing_availability").get("/api/client/availability", headers=customer_headers)
    assert beat.status_code == 200 and beat.json["online"] is True
    assert beacon.status_code == 200 and beacon.json["available"] == 2


def test_a_timeout_is_not_retried(hung):
    ctx, hole, _, _, _ = hung
    before = hole.accepted
    with pytest.raises(Exception) as err:
        ctx.valkey.ping()
    assert "Timeout" in type(err.value).__name__
    assert hole.accepted - before <= 1  # one connection, one wait: no retry on a timeout
