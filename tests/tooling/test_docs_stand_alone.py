"""The repository stands alone: no file cites a document it does not contain."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"SPEC §|SPEC\.md|\.\./shared/|STYLE\.md|\b[Ii]ssues? \d+\b|\bfindings? \d+\b")
LOCAL_LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)#\s]+)")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout
    suffixes = {".py", ".md", ".toml", ".yaml", ".yml", ".sql", ".lua", ".json", ".txt", ".cfg", ""}
    return [REPO / name for name in listed.split() if Path(name).suffix in suffixes and (REPO / name).is_file()]


def test_no_file_cites_a_document_outside_the_repository():
    found = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and path.name != "test_docs_stand_alone.py":
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert found == []


def test_every_relative_link_in_the_docs_names_a_file_of_the_repository():
    broken = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "CHANGELOG.md"]:
        for target in LOCAL_LINK.findall(path.read_text()):
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
    assert broken == []
