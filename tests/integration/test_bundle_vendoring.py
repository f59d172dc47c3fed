"""Every bundle runs on its own: built into a temp dir, imported in a fresh interpreter that sees
only the bundle and site-packages, and served through functions-framework's create_app."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from infra import bundle
from shared import manifest

GROUPS = bundle.groups()
HEAVY = ("firebase_admin", "google.cloud.scheduler")

# Runs inside the bundle's interpreter: import main through create_app (as the runtime does),
# then send one request. Prints one JSON line for the test to check.
PROBE = """
import importlib.util, json, os, sysconfig
probe = json.loads({probe!r})
heavy_prefixes = tuple(probe["heavy"])
report = {{"leaks": [n for n in ("infra", "functions", "tests") if importlib.util.find_spec(n)]}}
import functions_framework
if probe["entry_point"]:
    app = functions_framework.create_app(target=probe["entry_point"], source=os.path.join(probe["bundle"], "main.py"))
else:
    import main  # a group with no manifest entries yet: importing it must still work
import shared, shared.manifest
report["shared_file"] = shared.__file__
report["manifest_file"] = str(shared.manifest.path())
report["manifest"] = [repr(fn) for fn in shared.manifest.load().functions]
report["tomllib"] = "tomllib" in __import__("sys").modules
import logging, shared.log
report["log_line"] = json.loads(shared.log.JsonFormatter().format(logging.makeLogRecord({{"msg": "probe"}})))
report["heavy"] = sorted(m for m in __import__("sys").modules if m.startswith(heavy_prefixes))
allowed = [probe["bundle"], *probe["sites"], sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]]
roots = [os.path.realpath(a) for a in allowed]
report["outside"] = sorted(
    name for name, mod in list(__import__("sys").modules.items())
    if getattr(mod, "__file__", None) and not os.path.realpath(mod.__file__).startswith(tuple(roots))
)
if probe["entry_point"] and hasattr(app, "test_client"):  # a Flask app
    client = app.test_client()
    for name, (method, path) in probe["requests"].items():
        resp = client.open(path, method=method)
        report[name] = {{
            "status": resp.status_code, "json": resp.get_json(silent=True), "allow": resp.headers.get("Allow"),
        }}
elif probe["entry_point"]:  # a coroutine function's Starlette app
    from starlette.testclient import TestClient
    client = TestClient(app)
    for name, (method, path) in probe["requests"].items():
        resp = client.request(method, path)
        report[name] = {{"status": resp.status_code, "json": resp.json(), "allow": resp.headers.get("Allow")}}
print(json.dumps(report))
"""


def _wrong_method(fn: manifest.Function) -> str:
    return "PATCH" if fn.method == "DELETE" else "DELETE"


def _probe_target(group: str) -> tuple[manifest.Function | None, dict[str, tuple[str, str]]]:
    """The function to call in `group` and the requests to send it (none when the group has no entries)."""
    # The health check when the group serves it (it reaches both servers), else any public one.
    functions = sorted(manifest.load().group(group), key=lambda fn: (fn.name != "healthz", fn.test_only, fn.name))
    if not functions:
        return None, {}
    fn = functions[0]
    path = "/" + "/".join("42" if s.startswith(":") else s for s in fn.segments)
    requests = {"wrong_method": (_wrong_method(fn), path)}
    if fn.name == "healthz":
        requests["healthz"] = ("GET", path)
    return fn, requests


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory, test_env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Build every bundle into a temp dir and probe each in its own fresh interpreter."""
    out = tmp_path_factory.mktemp("bundles")
    results: dict[str, dict[str, Any]] = {}
    for built in bundle.build_all(out):
        fn, requests = _probe_target(built.group)
        probe = {
            "bundle": str(built.path),
            "sites": bundle.site_dirs(),
            "entry_point": fn.entry_point if fn else None,
            "requests": requests,
            "heavy": HEAVY,
        }
        code = PROBE.format(probe=json.dumps(probe))
        done = subprocess.run(
            bundle.isolated_python(built.path, code),
            cwd=built.path,
            env=dict(test_env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{built.group} bundle failed:\n{done.stderr[-3000:]}"
        results[built.group] = {"path": built.path, **json.loads(done.stdout.strip().splitlines()[-1])}
    return results


@pytest.mark.parametrize("group", GROUPS)
def test_bundle_imports_its_vendored_shared_and_nothing_from_the_repo(probes, group):
    result = probes[group]
    root = Path(result["path"])
    assert result["leaks"] == []
    assert Path(result["shared_file"]).is_relative_to(root)
    assert Path(result["manifest_file"]) == root / "shared" / "functions.json"
    assert result["manifest"] == [repr(fn) for fn in manifest.load().functions]  # the same manifest
    assert result["tomllib"] is False  # a cold start parses JSON, never TOML
    assert result["outside"] == []


@pytest.mark.parametrize("group", [g for g in GROUPS if manifest.load().group(g)])
def test_bundle_entry_point_answers_through_create_app(probes, group):
    fn, _ = _probe_target(group)
    answer = probes[group]["wrong_method"]
    assert answer["status"] == 405
    assert answer["json"]["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert answer["allow"] == fn.method


def test_admin_bundle_health_check_reaches_postgres_and_valkey(probes):
    answer = probes["admin"]["healthz"]
    assert answer["status"] == 200
    assert answer["json"]["postgres"]["ok"] and answer["json"]["valkey"]["ok"]


@pytest.mark.parametrize("group", [g for g in ("heartbeat", "sweeps") if g in GROUPS])
def test_hot_path_bundles_never_import_firebase_or_the_scheduler_client(probes, group):
    assert probes[group]["heavy"] == []


def test_heartbeat_bundle_ships_neither_firebase_nor_the_scheduler_client(probes):
    requirements = (Path(probes["heartbeat"]["path"]) / "requirements.txt").read_text()
    assert "firebase-admin" not in requirements
    assert "google-cloud-scheduler" not in requirements


def test_sweeps_bundle_ships_firebase_only_for_the_expiry_push_and_never_the_scheduler_client(probes):
    # session-expiry pushes "expired" to the customer (docs/sweeps.md), so firebase-admin is installed,
    # but it is imported only when a push is sent: the cold-start test above proves that.
    requirements = (Path(probes["sweeps"]["path"]) / "requirements.txt").read_text()
    assert "google-cloud-scheduler" not in requirements
    assert "firebase-admin" in requirements


def test_bundle_requirements_are_pinned_lines_of_requirements_txt(probes):
    pinned = {line.strip() for line in bundle.REQUIREMENTS.read_text().splitlines()}
    for result in probes.values():
        lines = (Path(result["path"]) / "requirements.txt").read_text().splitlines()
        wanted = [line for line in lines if line and not line.startswith("#")]
        assert any(w.startswith("functions-framework==") for w in wanted)
        assert set(wanted) <= pinned


def test_every_bundle_and_its_log_lines_carry_the_release_it_was_built_from(probes):
    expected = bundle.release_version()
    assert expected.startswith(tomllib.loads((bundle.REPO / "pyproject.toml").read_text())["project"]["version"] + "+g")
    for group, result in probes.items():
        stamped = json.loads((Path(result["path"]) / "shared" / "release.json").read_text())
        assert stamped == {"version": expected}, group
        assert result["log_line"]["serviceContext"]["version"] == expected, group
