"""The README's environment table is a copy of shared/config.py: same variables, same defaults."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from shared import config

README = Path(__file__).resolve().parents[2] / "README.md"
# Read by the dev server, the deploy tooling or the log setup, not by Settings.
NOT_SETTINGS = {"ADMIN_EMAIL", "ADMIN_PASSWORD", "PORT", "HOST", "LOG_LEVEL"}
_LITERAL = re.compile(r"^(?:`([^`]*)`|(\d+(?:\.\d+)?)|–)(?:\s|$)")


def _rows() -> list[tuple[list[str], str]]:
    text = README.read_text()
    table = text[text.index("| variable | default | meaning |") :].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        variables_cell, default_cell = line.split(" | ")[:2]
        rows.append((re.findall(r"`([A-Z][A-Z0-9_]+)`", variables_cell), default_cell))
    return rows


def test_the_table_names_every_setting_and_nothing_else():
    named = {name for variables, _ in _rows() for name in variables}
    settings = {f.name.upper() for f in fields(config.Settings)}
    assert named - NOT_SETTINGS == settings


@pytest.mark.parametrize(("variables", "cell"), _rows(), ids=lambda v: v[0] if isinstance(v, list) else "")
def test_a_default_the_table_states_is_the_one_config_uses(variables, cell):
    parts = [part.strip() for part in cell.split(", ")]
    if len(parts) != len(variables):
        parts = [cell.strip()] * len(variables) if len(variables) == 1 else []
    for name, part in zip(variables, parts, strict=False):
        match = _LITERAL.match(part)
        if name in NOT_SETTINGS or not match or part[match.end() :].startswith("in dev"):
            continue  # prose ("embedded in dev/tests", "Google's certs") or a value of `make dev` only
        quoted, number = match.groups()
        expected = config.default(name)
        if quoted is not None:
            assert quoted == expected, name
        elif number is not None:
            assert float(number) == float(expected), name
        else:
            assert expected in (None, ()), name
