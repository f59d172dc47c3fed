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
