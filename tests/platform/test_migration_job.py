"""The migration job's entry point (`python -m infra.job`), as the deploy runs it before a rollout."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pg8000.native
import pytest

from infra import bundle, job, migrate
from infra.deploy import migration_job
from shared.db import parse_database_url


def _admin(url: str) -> pg8000.native.Connection:
    p = parse_database_url(url)
    return pg8000.native.Connection(
        p.user, host=p.host or "localhost", port=p.port, database="postgres", password=p.password, unix_sock=p.unix_sock
    )


@pytest.fixture
def empty_database(test_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(DATABASE_URL of a brand-new empty database, a role standing for the functions' IAM user)."""
    name, role = f"job_{uuid.uuid4().hex[:12]}", f"fn-{uuid.uuid4().hex[:8]}@p.iam"
    admin = _admin(test_env["DATABASE_URL"])
    admin.run(f"CREATE DATABASE {name}")
    admin.run(f'CREATE ROLE "{role}" NOLOGIN')
    base, _, query = test_env["DATABASE_URL"].partition("?")
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else ""), role
    finally:
        admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.run(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def _rows(url: str, sql: str, **params: object) -> list[list[object]]:
    p = parse_database_url(url)
    conn = pg8000.native.Connection(
        p.user, host=p.host or "localhost", port=p.port, database=p.database, password=p.password, unix_sock=p.unix_sock
    )
    try:
        return conn.run(sql, **params)
    finally:
        conn.close()


def test_the_job_migrates_an_empty_database_then_a_migrated_one_then_bootstraps_the_admin_once(empty_database, capsys):
    url, role = empty_database
    env = {"DATABASE_URL": url, "DB_GRANT_TO": role}
    every = [m.version for m in migrate.discover()]

    assert job.main(env) == 0
    first = capsys.readouterr().out
    assert f"applied {len(every)} migration(s): {', '.join(every)}" in first
    assert _rows(url, "SELECT version FROM schema_migrations ORDER BY version") == [[v] for v in every]
    # The functions' user may read and write rows, and will for tables later migrations add.
    assert _rows(url, "SELECT has_table_privilege(:r, 'mitras', 'INSERT, UPDATE, DELETE, SELECT')", r=role) == [[True]]
    assert _rows(url, "SELECT has_table_privilege(:r, 'mitras', 'TRUNCATE')", r=role) == [[False]]
    assert _rows(
        url,
        "SELECT count(*) FROM pg_default_acl WHERE :r = ANY(SELECT grantee::regrole::text FROM aclexplode(defaclacl))",
        r=f'"{role}"',
    ) == [[2]]

    assert job.main(env) == 0  # a migrated database: nothing to do
    assert "applied 0 migration(s): none pending" in capsys.readouterr().out

    email = f"owner-{uuid.uuid4().hex[:8]}@bestie.test"
    admin_env = {**env, "ADMIN_EMAIL": email, "ADMIN_PASSWORD": "Owner-Pass-123"}
    assert job.main(admin_env) == 0
    assert job.main({**admin_env, "ADMIN_PASSWORD": "Another-Pass-456"}) == 0
    out = capsys.readouterr().out
    assert "created" in out and "already exists, unchanged" in out
    assert _rows(url, "SELECT role FROM control_center_users WHERE email = :e", e=email) == [["admin"]]


def test_the_job_refuses_a_grantee_that_is_not_a_user_name_and_an_admin_without_password(empty_database, capsys):
    url, _ = empty_database
    assert job.main({"DATABASE_URL": url, "DB_GRANT_TO": 'x"; DROP TABLE mitras; --'}) == 2
    assert "DB_GRANT_TO" in capsys.readouterr().err
    assert job.main({"DATABASE_URL": url, "ADMIN_EMAIL": "a@b.test"}) == 2
    assert "ADMIN_PASSWORD" in capsys.readouterr().err
    assert _rows(url, "SELECT count(*) FROM control_center_users") == [[0]]


def test_the_job_bundle_runs_alone_and_migrates_from_its_own_files(empty_database, tmp_path):
    # What Cloud Run builds: only the bundle and the pinned packages, started as its Procfile says.
    url, role = empty_database
    built = migration_job.build(tmp_path, "bestie-migrate", "python311")
    assert (built / "Procfile").read_text() == "web: python -m infra.job\n"
    assert (built / ".python-version").read_text() == "3.11\n"
    pinned = (built / "requirements.txt").read_text()
    assert "pg8000==" in pinned and "cloud-sql-python-connector==" in pinned
    code = "import runpy; runpy.run_module('infra.job', run_name='__main__')"
    done = subprocess.run(
        bundle.isolated_python(built, code),
        cwd=built,
        env={"PATH": os.environ["PATH"], "DATABASE_URL": url, "DB_GRANT_TO": role},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"applied {len(migrate.discover())} migration(s)" in done.stdout
    assert _rows(url, "SELECT count(*) FROM schema_migrations") == [[len(migrate.discover())]]
