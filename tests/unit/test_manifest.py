"""The function manifest: shape, uniqueness and route matching."""

import pytest

from shared import manifest


def test_every_manifest_entry_point_exists_in_its_group_module():
    m = manifest.load()
    for fn in m.functions:
        source = (manifest.path().parent.parent / "functions" / fn.group / "main.py").read_text()
        assert f"def {fn.entry_point}(" in source, fn.name


def test_route_parameters_are_matched_right_aligned():
    fn = manifest.Function(
        name="x-y", group="g", entry_point="x", method="POST", route="/api/client/chat-sessions/:id/cancel"
    )
    assert fn.match("/api/client/chat-sessions/abc/cancel") == {"id": "abc"}
    # A function URL adds its own prefix; the route still matches from the right.
    assert fn.match("/bestie-cancel/api/client/chat-sessions/abc/cancel") == {"id": "abc"}
    assert fn.match("/api/client/chat-sessions/abc/end") is None
    assert fn.match_exact("/x/api/client/chat-sessions/abc/cancel") is None


def test_duplicate_routes_are_rejected():
    raw = {
        "function": [
            {"name": "a-a", "group": "g", "entry_point": "a", "method": "GET", "route": "/a"},
            {"name": "b-b", "group": "g", "entry_point": "b", "method": "GET", "route": "/a"},
        ]
    }
    with pytest.raises(ValueError, match="duplicate"):
        manifest.parse(raw)


def test_invalid_auth_kind_is_rejected():
    raw = {
        "function": [{"name": "a-a", "group": "g", "entry_point": "a", "method": "GET", "route": "/a", "auth": "maybe"}]
    }
    with pytest.raises(ValueError, match="auth"):
        manifest.parse(raw)


def test_the_billing_mode_of_each_function_is_the_one_the_cost_model_chose():
    import re
    from pathlib import Path

    table = (Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text().split("## Billing mode", 1)[1]
    chosen = dict(re.findall(r"^\| ([a-z0-9-]+) \| (instance|request) \|", table, re.M))
    assert chosen, "docs/cost.md has no billing table: run make cost"
    billed = {fn.name: fn.billing for fn in manifest.load().functions}
    assert {name: billed[name] for name in chosen} == chosen
    assert {name for name, mode in billed.items() if mode == "instance"} == {
        n for n, m in chosen.items() if m == "instance"
    }
