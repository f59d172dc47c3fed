"""openapi.yaml documents every route of the manifest, and nothing the manifest lacks."""

import re
from pathlib import Path

import yaml

from shared import manifest

SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"


class _StrictLoader(yaml.SafeLoader):
    """Refuses duplicate mapping keys, which plain YAML loading silently collapses."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
        assert not duplicates, f"duplicate keys {duplicates} at line {node.start_mark.line + 1}"
        return super().construct_mapping(node, deep=deep)


def _documented() -> set[tuple[str, str]]:
    doc = yaml.load(SPEC.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    assert doc["openapi"].startswith("3.")
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }


def _route_as_openapi(route: str) -> str:
    return re.sub(r":(\w+)", r"{\1}", route)


def test_every_manifest_route_is_documented():
    routes = {(fn.method, _route_as_openapi(fn.route)) for fn in manifest.load().functions}
    missing = routes - _documented()
    assert not missing, f"routes without an openapi.yaml entry: {sorted(missing)}"


def test_openapi_documents_no_route_the_manifest_lacks():
    routes = {(fn.method, _route_as_openapi(fn.route)) for fn in manifest.load().functions}
    extra = _documented() - routes
    assert not extra, f"openapi.yaml documents routes nothing serves: {sorted(extra)}"
