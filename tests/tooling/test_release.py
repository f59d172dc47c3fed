"""The release version: one number in pyproject.toml and CHANGELOG.md, in every log line."""

import json
import logging
import re
import tomllib
from pathlib import Path

from shared import log, release

REPO = Path(__file__).resolve().parents[2]


def test_the_changelog_opens_with_the_project_version():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    first = re.search(r"^## \[?([0-9][^\]\s]*)", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert first is not None and first.group(1) == version


def test_a_log_line_outside_a_bundle_names_the_dev_release_and_its_service(monkeypatch):
    monkeypatch.setenv("K_SERVICE", "auth-me")
    log._service_context.cache_clear()
    try:
        line = json.loads(log.JsonFormatter().format(logging.makeLogRecord({"msg": "hello"})))
    finally:
        log._service_context.cache_clear()
    assert line["serviceContext"] == {"service": "auth-me", "version": release.UNSTAMPED}
