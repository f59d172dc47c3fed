"""The deployed shape on the stand-in: URL map, CORS preflight, key rotation, cold starts, logs."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest

from shared import config, manifest
from tests.platform.conftest import CC_ORIGIN
from tests.platform.principals import signing_context, token_for
from tests.platform.standin import ColdStartFailed, Platform, json_lines

PARAM = "00000000-0000-4000-8000-000000000000"


def _path(fn: manifest.Function) -> str:
    return "/" + "/".join(PARAM if s.startswith(":") else s for s in fn.segments)


def _public(plan) -> list[manifest.Function]:
    return [fp.fn for fp in plan.functions if fp.public]


def _access_lines(platform: Platform, name: str) -> list[dict]:
    return [e for e in json_lines(platform.log_lines(name)) if "httpRequest" in e]


def test_every_url_map_route_reaches_its_function(platform: Platform, platform_plan):
    functions = _public(platform_plan)
    platform.start_all(fn.name for fn in functions)
    for fn in functions:
        request_id = uuid.uuid4().hex
        resp = platform.open(fn.method, "https://api.bestie.example" + _path(fn), headers={"X-Request-Id": request_id})
        assert resp.status_code != 405, fn.name
        served = [e for e in _access_lines(platform, fn.name) if e.get("request_id") == request_id]
        assert served and served[0]["function"] == fn.name, f"{fn.method} {fn.route} did not reach {fn.name}"


def test_every_method_of_a_shared_path_passes_its_preflight(platform: Platform, platform_plan):
    by_path: dict[str, set[str]] = {}
    for fn in _public(platform_plan):
        if fn.route.startswith("/internal"):
            by_path.setdefault(_path(fn), set()).add(fn.method)
    shared = {path: methods for path, methods in by_path.items() if len(methods) > 1}
    assert "/internal/app-config/" + PARAM in shared  # GET and PUT, two functions
    for path, methods in shared.items():
        for method in methods:
            resp = platform.open(
                "OPTIONS",
                "https://api.bestie.example" + path,
                headers={"Origin": CC_ORIGIN, "Access-Control-Request-Method": method},
            )
            allowed = {m.strip() for m in resp.headers.get("Access-Control-Allow-Methods", "").split(",")}
            assert resp.status_code == 204 and method in allowed, (path, method, dict(resp.headers))


def test_after_key_rotation_every_jwt_function_accepts_tokens_signed_with_the_old_secret(
    platform: Platform, platform_plan
):
    old = platform.secret_values["AUTH_JWT_PREVIOUS_SECRETS"]
    checking = [fn for fn in _public(platform_plan) if fn.auth in config.JWT_AUTH_KINDS]
    assert len(checking) > 15
    platform.start_all(fn.name for fn in checking)
    signed_old, signed_unknown = signing_context(old), signing_context("never-deployed-secret-" + "z" * 40)
    try:
        for fn in checking:
            url = "https://api.bestie.example" + _path(fn)
            resp = platform.open(fn.method, url, headers={"Authorization": f"Bearer {token_for(signed_old, fn)}"})
            assert resp.status_code != 401, (fn.name, resp.get_data(as_text=True))
            control = platform.open(
                fn.method, url, headers={"Authorization": f"Bearer {token_for(signed_unknown, fn)}"}
            )
            assert control.status_code == 401, fn.name  # the check is real: an unknown key is refused
    finally:
        signed_old.close()
        signed_unknown.close()


def _one_per_group(plan) -> list:
    seen: dict[str, object] = {}
    for fp in plan.functions:
        seen.setdefault(fp.fn.group, fp)
    return list(seen.values())


def test_every_groups_cold_start_without_a_required_secret_fails_at_import_naming_it(platform: Platform, platform_plan):
    checked = 0
    for fp in _one_per_group(platform_plan):
        env = {**platform.environment(fp.fn.name)}
        required = [
            name for spec in config.required_for(fp.fn.auth, env) for name in spec.split("|") if name in fp.secrets
        ]
        assert required, fp.fn.name
        for secret in required:
            with pytest.raises(ColdStartFailed) as failed:
                platform.start(fp.fn.name, drop=[secret])
            assert secret in failed.value.output, (fp.fn.name, secret)
            first = json.loads(failed.value.output.splitlines()[0])
            assert first["severity"] == "CRITICAL" and secret in first["message"]
            checked += 1
    assert checked >= 2 * len({fp.fn.group for fp in platform_plan.functions})


def test_every_groups_logs_are_one_json_object_per_line_with_trace_and_http_request(platform: Platform, platform_plan):
    project = platform_plan.config.project
    for fp in _one_per_group(platform_plan):
        trace = secrets.token_hex(16)
        headers = {"X-Cloud-Trace-Context": f"{trace}/1;o=1"}
        if fp.public:
            platform.open(fp.fn.method, "https://api.bestie.example" + _path(fp.fn), headers=headers)
        else:
            job = next(j for j in platform_plan.jobs if j.name.endswith("/" + fp.fn.name))
            token = platform.id_token(job.http_target.oidc_token.service_account_email, fp.url)
            platform.open(
                "POST",
                job.http_target.uri,
                headers={**headers, "Authorization": f"Bearer {token}"},
                environ_base={"standin.internal": True},
            )
        lines = platform.log_lines(fp.fn.name)
        entries = json_lines(lines)  # every line, from the first, is one JSON object
        assert len(entries) == len([line for line in lines if line.strip()])
        assert all("severity" in e and "message" in e for e in entries), fp.fn.name
        access = [e for e in entries if "httpRequest" in e and e["logging.googleapis.com/trace"].endswith(trace)]
        assert access, f"{fp.fn.name}: no access line for the request"
        line = access[-1]
        assert line["logging.googleapis.com/trace"] == f"projects/{project}/traces/{trace}"
        assert line["httpRequest"]["requestMethod"] == fp.fn.method
        assert line["httpRequest"]["status"] == line["status"]
        assert line["severity"] == "INFO"
