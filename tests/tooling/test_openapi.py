"""openapi.yaml documents every route of the manifest, and nothing the manifest lacks."""

import re
from pathlib import Path

import pytest
import yaml

from infra import openapi_norm
from shared import manifest

SPEC = Path(__file__).resolve().parents[2] / "openapi.yaml"


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when there
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


# ---- what client generators need (docs/api.md) -------------------------------------------------


def _doc() -> dict:
    return yaml.load(SPEC.read_text(), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def _operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method, path, op


def test_every_operation_is_named_after_its_function_and_tagged_with_its_audience():
    functions = openapi_norm.operations()
    doc = _doc()
    declared_tags = {t["name"] for t in doc.get("tags", [])}
    wrong = []
    for method, path, op in _operations(doc):
        fn = functions[(method, path)]
        if op.get("operationId") != fn.name or op.get("tags") != [openapi_norm.audience(fn.route)]:
            wrong.append(f"{method.upper()} {path}: {op.get('operationId')} {op.get('tags')}")
        assert set(op.get("tags", [])) <= declared_tags, f"{method} {path}: tag not in the top-level tags"
    assert not wrong, "run `python -m infra.openapi_norm`: " + "; ".join(wrong)


def test_every_operation_has_a_default_error_response():
    missing = [f"{m.upper()} {p}" for m, p, op in _operations(_doc()) if "default" not in op["responses"]]
    assert not missing, f"no `default` response (run `python -m infra.openapi_norm`): {missing}"


def test_every_error_code_the_code_can_raise_is_in_the_error_code_enum():
    documented = set(_doc()["components"]["schemas"]["ErrorCode"]["enum"])
    raised = openapi_norm.raised_codes()
    assert raised - documented == set(), (
        f"raised but not documented (run python -m infra.openapi_norm): {raised - documented}"
    )
    assert documented - raised == set(), f"documented but never raised: {documented - raised}"


def test_the_code_scan_sees_literal_class_and_computed_codes(tmp_path):
    (tmp_path / "m.py").write_text(
        "class Gone(ApiError):\n    status, code, default_message = 410, 'GONE_FOR_GOOD', 'gone'\n"
        "def f():\n    raise Conflict('x', code='NEW_CODE')\n"
    )
    assert openapi_norm.raised_codes((tmp_path,)) == {"GONE_FOR_GOOD", "NEW_CODE"}
    (tmp_path / "n.py").write_text("def g(c):\n    raise Conflict('x', code=c.upper())\n")
    with pytest.raises(ValueError, match=r"computed as `c\.upper\(\)`"):
        openapi_norm.raised_codes((tmp_path,))


def test_the_normalizer_leaves_the_committed_document_unchanged():
    text = SPEC.read_text()
    assert openapi_norm.normalize(text) == text, "run `python -m infra.openapi_norm`"
