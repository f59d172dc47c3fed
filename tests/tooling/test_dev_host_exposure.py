"""`make dev` refuses a non-loopback HOST while the test endpoints or unverified sweeps are on."""

from __future__ import annotations

import pytest

from infra import dev

UNSAFE = {"ENABLE_TEST_ENDPOINTS": "1", "SWEEP_AUTH": "none"}
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (the address under test, never bound)


@pytest.mark.parametrize("host", [EVERY_INTERFACE, "::", "192.168.1.20", "[::]", "devbox.lan"])
def test_a_host_reachable_from_the_network_is_refused_with_the_dev_defaults(host):
    problem = dev.exposure_problem(host, UNSAFE)
    assert problem and f"HOST={host}" in problem and "ENABLE_TEST_ENDPOINTS" in problem and "SWEEP_AUTH" in problem


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_fine(host):
    assert dev.exposure_problem(host, UNSAFE) is None


def test_either_open_door_alone_is_enough_to_refuse_and_neither_is_fine():
    assert "ENABLE_TEST_ENDPOINTS" in (dev.exposure_problem(EVERY_INTERFACE, {"ENABLE_TEST_ENDPOINTS": "true"}) or "")
    assert "SWEEP_AUTH" in (dev.exposure_problem(EVERY_INTERFACE, {"SWEEP_AUTH": "NONE"}) or "")
    assert dev.exposure_problem(EVERY_INTERFACE, {"ENABLE_TEST_ENDPOINTS": "0", "SWEEP_AUTH": "oidc"}) is None


def test_main_stops_before_starting_anything(monkeypatch, capsys):
    monkeypatch.setenv("HOST", EVERY_INTERFACE)
    monkeypatch.delenv("ENABLE_TEST_ENDPOINTS", raising=False)  # the dev default (1) applies
    started = []
    monkeypatch.setattr(dev.embedded, "services", lambda *a, **k: started.append(a))
    assert dev.main() == 2
    assert started == []
    assert "refusing to serve on HOST=0.0.0.0" in capsys.readouterr().err
