"""The load balancer URL map built from the manifest routes."""

from __future__ import annotations

import json

from infra import deploy
from infra.deploy import urlmap
from shared import manifest

PROJECT, REGION = "bestie-prod", "asia-southeast2"


def _fn(name, method, route, auth="cc", **extra):
    return {"name": name, "group": "admin", "entry_point": name.replace("-", "_"), "method": method, "route": route,
            "auth": auth, **extra}  # fmt: skip


SAMPLE = manifest.parse(
    {
        "function": [
            _fn("healthz", "GET", "/healthz", auth="none"),
            _fn("cc-user-reset-password", "PATCH", "/internal/control-center-users/:id/password", auth="cc_admin"),
            _fn("cc-user-change-password", "PATCH", "/internal/control-center-users/me/password"),
            _fn("cc-mitras-list", "GET", "/internal/mitras"),
            _fn("cc-mitras-create", "POST", "/internal/mitras"),
            _fn(
                "sweep-reseed",
                "POST",
                "/sweeps/reseed",
                auth="scheduler",
                schedule_env="AVAILABILITY_RESEED_SWEEP_SECONDS",
            ),
            _fn("test-seed-mitra", "POST", "/internal/_test/seed-mitra", auth="none", test_only=True),
        ]
    }
)


def _url_map(functions=SAMPLE.functions):
    return deploy.plan(functions, deploy.load_config(PROJECT, REGION), {}).url_map


def _rules(url_map):
    (matcher,) = url_map["pathMatchers"]
    return matcher["routeRules"]


def _method_rules(url_map):
    return {
        (rule["matchRules"][0]["headerMatches"][0]["exactMatch"], rule["matchRules"][0]["pathTemplateMatch"]): rule
        for rule in _rules(url_map)
        if "headerMatches" in rule["matchRules"][0]
    }


def test_path_parameters_become_single_segment_wildcards():
    fn = SAMPLE.by_entry_point("cc_user_reset_password")
    assert urlmap.path_template(fn) == "/internal/control-center-users/*/password"


def test_functions_sharing_a_path_are_told_apart_by_method():
    rules = _method_rules(_url_map())
    assert rules[("GET", "/internal/mitras")]["service"].endswith("/backendServices/bestie-cc-mitras-list")
    assert rules[("POST", "/internal/mitras")]["service"].endswith("/backendServices/bestie-cc-mitras-create")


def test_a_literal_segment_wins_over_a_parameter():
    rules = _method_rules(_url_map())
    literal = rules[("PATCH", "/internal/control-center-users/me/password")]
    param = rules[("PATCH", "/internal/control-center-users/*/password")]
    assert literal["priority"] < param["priority"]


def test_a_wrong_method_reaches_a_function_of_that_path_after_every_method_rule():
    rules = _rules(_url_map())
    fallbacks = [r for r in rules if "headerMatches" not in r["matchRules"][0]]
    last_method_rule = max(r["priority"] for r in rules if "headerMatches" in r["matchRules"][0])
    assert {r["matchRules"][0]["pathTemplateMatch"] for r in fallbacks} == {
        urlmap.path_template(fn) for fn in SAMPLE.functions if fn.auth != "scheduler" and not fn.test_only
    }
    assert all(r["priority"] > last_method_rule for r in fallbacks)
    assert len({r["priority"] for r in rules}) == len(rules)


def test_sweeps_and_test_only_functions_are_not_behind_the_load_balancer():
    text = json.dumps(_url_map())
    assert "sweep-reseed" not in text and "test-seed-mitra" not in text and "_test" not in text


def test_unknown_routes_go_to_the_health_function_which_answers_json_404():
    assert _url_map()["defaultService"] == f"projects/{PROJECT}/global/backendServices/bestie-healthz"


def test_every_public_route_of_the_real_manifest_has_a_rule_and_a_backend():
    functions = manifest.load().functions
    plan = deploy.plan(functions, deploy.load_config(PROJECT, REGION), {})
    rules = _method_rules(plan.url_map)
    public = [fn for fn in functions if not fn.test_only and fn.auth != "scheduler"]
    for fn in public:
        assert (fn.method, urlmap.path_template(fn)) in rules
    negs = [cmd for cmd in plan.lb_commands if cmd[2] == "network-endpoint-groups"]
    assert sorted(cmd[4] for cmd in negs) == sorted(urlmap.neg_name("bestie", fn) for fn in public)
    assert all(f"--cloud-function-name={cmd[4].removeprefix('bestie-').removesuffix('-neg')}" in cmd for cmd in negs)


def test_printed_url_map_is_valid_json_for_url_maps_import():
    url_map = _url_map()
    assert json.loads(urlmap.to_text(url_map)) == url_map
