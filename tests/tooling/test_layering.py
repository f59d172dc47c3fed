"""The import contracts (.importlinter, docs/architecture.md) hold, and break on an upward import.

Each breaking case runs lint-imports on a scratch copy of shared/ and functions/ with one
import added, so the contracts are shown to fail for the reason they exist, not merely to pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy(tmp_path: Path) -> Path:
    for name in ("shared", "functions"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _add_import(root: Path, module: str, statement: str) -> None:
    path = root / module
    source = path.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in source, module
    path.write_text(source.replace(marker, f"{marker}\n{statement}  # noqa\n", 1))


def test_the_repository_keeps_every_import_contract(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "broken"),
    [
        # the session core importing a service built on it
        ("shared/sessions/store.py", "import shared.pairing.service", "Services, then the session core"),
        # the session core importing the payments built on it
        ("shared/sessions/store.py", "import shared.payments.service", "Services, then the session core"),
        # payments importing a service above it
        ("shared/payments/service.py", "import shared.pairing.service", "Services, then the session core"),
        # an adapter importing a service
        ("shared/db.py", "import shared.sessions.store", "Services, then the session core"),
        # a service importing an entry point
        ("shared/chat/lists.py", "import functions.chat.main", "Entry points on top"),
        # two services built on the core importing each other
        ("shared/cc/sessions.py", "import shared.pairing.store", "Pairing, chat and cc never"),
        # a cycle between two lower packages
        ("shared/paging.py", "import shared.mitras", "No cycles between the packages"),
    ],
)
def test_an_upward_or_sideways_import_breaks_its_contract(
    tmp_path: Path, module: str, statement: str, broken: str
) -> None:
    root = _copy(tmp_path)
    _add_import(root, module, statement)
    result = _lint(root)
    assert result.returncode != 0, result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith(broken))
    assert " BROKEN" in line, result.stdout
