"""The operational-event catalog matches the code: every emit is catalogued, every entry emitted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared import oplog

REPO = Path(__file__).resolve().parents[2]


def emitted(root: Path = REPO / "shared") -> dict[str, list[tuple[str, frozenset[str]]]]:
    """Every `oplog.emit("name", field=...)` under `root`: name -> [(where, field names)]."""
    found: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "emit"):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "oplog"):
                continue
            first = node.args[0] if node.args else None
            where = f"{path.relative_to(root)}:{node.lineno}"
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), f"{where}: name must be a literal"
            assert all(k.arg for k in node.keywords), f"{where}: no **fields, so the catalog test can read them"
            found.setdefault(first.value, []).append((where, frozenset(k.arg for k in node.keywords if k.arg)))
    return found


def test_every_emitted_event_is_catalogued_with_exactly_its_fields():
    for name, sites in emitted().items():
        assert name in oplog.CATALOG, f"{sites[0][0]} emits {name!r}, which the catalog lacks"
        for where, fields in sites:
            assert fields == set(oplog.CATALOG[name].fields), f"{where}: {name} fields {sorted(fields)}"


def test_every_catalogued_event_is_emitted_somewhere():
    assert set(oplog.CATALOG) - set(emitted()) == set()


def test_a_misspelt_event_name_fails_the_catalog_check(tmp_path):
    (tmp_path / "module.py").write_text('from shared import oplog\noplog.emit("sweep.finishd", sweep="x")\n')
    names = emitted(tmp_path)
    assert names.keys() == {"sweep.finishd"}
    with pytest.raises(KeyError):
        oplog.emit("sweep.finishd", sweep="x")  # and at run time the name is refused too


def test_an_event_line_carries_its_name_and_typed_fields(caplog):
    with caplog.at_level("INFO", logger="bestie.ops"):
        oplog.emit("sweep.finished", sweep="auto-offline", passes=2, seconds=0.25)
    [record] = caplog.records
    assert (record.event, record.sweep, record.passes, record.seconds) == ("sweep.finished", "auto-offline", 2, 0.25)
    for name, event in oplog.CATALOG.items():
        assert event.meaning and event.fields, name
