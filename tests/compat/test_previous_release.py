"""The previous release's code works against this release's schema (expand, then contract).

Functions roll out one by one, so for hours the previous release's code serves traffic on a
database the new migrations have already changed (docs/migrations.md). This test exports the
previous release named in CHANGELOG.md from git, migrates a new database with THIS release's
migrations, and drives the previous release's key flows through its own functions against it:
sign-in and refresh, a mitra's OTP sign-in, online and heartbeat, a chat requested, accepted,
paid, written, read and ended. A migration that drops or renames something the previous
release reads fails it.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import uuid
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import pytest

from infra import bundle, migrate
from shared.config import Settings
from shared.db import Database
from tests.conftest import _admin_connection, _url_for

REPO = Path(__file__).resolve().parents[2]
FLOW = Path(__file__).with_name("previous_release_flow.py")


def previous_release() -> tuple[str, str]:
    """(version, commit) of the release below the newest in CHANGELOG.md."""
    found = re.findall(r"^## \[([^\]]+)\][^\n]*?\(commit ([0-9a-f]{7,40})\)", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert found, "CHANGELOG.md names no released commit"
    return found[0]


def export(commit: str, dest: Path) -> Path:
    """The previous release's functions/, shared/ and infra/ as a tree of files under dest."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "functions", "shared", "infra"],
        capture_output=True,
        check=False,
    )
    assert archive.returncode == 0, f"commit {commit} is not in this clone's history: {archive.stderr.decode()[:300]}"
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


@pytest.fixture
def new_schema_url(test_env: dict[str, str]):
    """A database migrated by this release's migrations, dropped afterwards."""
    name = f"nminus1_{uuid.uuid4().hex[:10]}"
    with _admin_connection(test_env["DATABASE_URL"]) as admin:
        admin.run(f"CREATE DATABASE {name}")
    url = _url_for(test_env["DATABASE_URL"], name)
    db = Database(replace(Settings.from_env(), database_url=url))
    try:
        migrate.migrate(db)
    finally:
        db.close()
    try:
        yield url
    finally:
        with _admin_connection(test_env["DATABASE_URL"]) as admin:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_flow(tree: Path, env: dict[str, str]) -> dict:
    prelude = f"import sys; sys.path.insert(0, {str(tree)!r})\n"
    argv = bundle.isolated_python(tree, prelude + FLOW.read_text())
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"the previous release failed on the new schema:\n{done.stderr[-4000:]}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_previous_releases_key_flows_work_on_this_releases_schema(
    test_env: dict[str, str], new_schema_url: str, tmp_path: Path
):
    version, commit = previous_release()
    tree = export(commit, tmp_path / f"release-{version}")
    env = {**test_env, "DATABASE_URL": new_schema_url, "VALKEY_PREFIX": f"n1{uuid.uuid4().hex[:8]}:"}
    result = run_flow(tree, {**env, "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"})
    assert result["final_status"] == "ended"
    assert len(result["seen"]) == 15  # every step answered 2xx (the flow raises on anything else)
