"""Every error code a route can answer is named by that route's responses in openapi.yaml.

The codes per route are read statically from each handler's call graph (infra/error_codes.py);
an app generated from the document must know every code it can meet on each call.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from infra import error_codes, openapi_norm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doc() -> dict:
    return openapi_norm.load_spec()


@pytest.fixture(scope="module")
def graph() -> error_codes.Graph:
    return error_codes.Graph()


def test_every_code_a_route_can_answer_is_documented_on_that_route(doc, graph):
    gaps = error_codes.undocumented(doc, graph)
    assert gaps == {}, "codes a route can answer but its openapi.yaml responses do not name: " + "; ".join(
        f"{route}: {sorted(codes)}" for route, codes in sorted(gaps.items())
    )


def test_every_code_a_routes_own_responses_name_is_one_it_can_answer(doc, graph):
    stale = error_codes.overdocumented(doc, graph)
    assert stale == {}, "documented on a route that cannot answer them: " + "; ".join(
        f"{route}: {sorted(codes)}" for route, codes in sorted(stale.items())
    )


def test_each_code_raised_through_an_object_is_unreached_by_the_scan_and_documented(doc, graph):
    by_route = {
        f"{fn.method} {openapi_norm.openapi_path(fn.route)}": codes
        for fn, codes in error_codes.route_codes(graph).items()
    }
    known = set(doc["components"]["schemas"]["ErrorCode"]["enum"])
    for route, code in error_codes.RAISED_THROUGH_OBJECTS:
        assert code not in by_route[route], f"the scan now sees {code} on {route}: remove the entry"
        method, path = route.split(" ", 1)
        assert code in error_codes.own_codes(doc, method.lower(), path, known), f"{route} must document {code}"


def test_each_unreachable_exception_is_still_reached_and_undocumented(doc, graph):
    by_route = {
        f"{fn.method} {openapi_norm.openapi_path(fn.route)}": codes
        for fn, codes in error_codes.route_codes(graph).items()
    }
    known = set(doc["components"]["schemas"]["ErrorCode"]["enum"])
    for route, code in error_codes.UNREACHABLE:
        assert code in by_route[route], f"stale exception: {route} no longer reaches {code}; remove it"
        method, path = route.split(" ", 1)
        assert code not in error_codes.documented_codes(doc, method.lower(), path, known), f"{route} documents {code}"


def test_the_scan_follows_calls_through_modules_and_sees_a_new_undocumented_code(doc, tmp_path):
    for root in error_codes.ROOTS:
        shutil.copytree(REPO / root, tmp_path / root, ignore=shutil.ignore_patterns("__pycache__"))
    # A new code raised two calls below the logout handler (in shared.devices), documented nowhere.
    devices = tmp_path / "shared" / "devices.py"
    source = devices.read_text()
    at = source.index("    return tx.execute(", source.index("def remove_in_tx("))
    helper = "\n\ndef _refuse(fcm_token):\n    raise Conflict('new', code='BRAND_NEW_CODE')\n"
    devices.write_text(source[:at] + "    _refuse(fcm_token)\n" + source[at:] + helper)
    gaps = error_codes.undocumented(doc, error_codes.Graph(tmp_path))
    assert gaps["POST /api/shared/auth/logout"] == {"BRAND_NEW_CODE"}
    assert gaps["DELETE /api/client/devices"] == {"BRAND_NEW_CODE"}
    assert "PUT /api/client/devices" not in gaps  # registering never calls it


def test_the_guard_adds_its_codes_by_the_auth_kind(graph):
    assert "ADMIN_REQUIRED" in graph.guard_codes("cc_admin") and "ADMIN_REQUIRED" not in graph.guard_codes("cc")
    assert "ACCOUNT_BLOCKED" in graph.guard_codes("customer") and "ACCOUNT_BLOCKED" not in graph.guard_codes("mitra")
    assert {"TOKEN_EXPIRED", "SESSION_REVOKED", "WRONG_USER_TYPE"} <= graph.guard_codes("mitra")


def test_a_code_documented_on_a_route_that_cannot_answer_it_is_reported(doc, graph):
    changed = copy.deepcopy(doc)
    responses = changed["paths"]["/api/shared/auth/logout-all"]["post"]["responses"]
    responses["409"] = {"description": "OFFER_CLOSED"}
    assert error_codes.overdocumented(changed, graph) == {"POST /api/shared/auth/logout-all": {"OFFER_CLOSED"}}
