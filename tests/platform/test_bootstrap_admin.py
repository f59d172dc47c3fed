"""`python -m infra bootstrap-admin` gives a fresh project its first admin, once."""

from __future__ import annotations

import uuid

from infra import bootstrap


def _admins(ctx, email: str) -> list[str]:
    with ctx.db.transaction() as tx:
        return [
            row["role"]
            for row in tx.rows("SELECT role FROM control_center_users WHERE lower(email) = lower(:e)", e=email)
        ]


def test_bootstrap_admin_creates_the_admin_once_and_a_rerun_changes_nothing(isolated_ctx, capsys):
    email = f"owner-{uuid.uuid4().hex[:8]}@bestie.test"
    env = {"DATABASE_URL": isolated_ctx.settings.database_url, "ADMIN_EMAIL": email, "ADMIN_PASSWORD": "Owner-Pass-123"}
    assert bootstrap.main([], environ=env) == 0
    assert bootstrap.main([], environ={**env, "ADMIN_PASSWORD": "Another-Pass-456"}) == 0
    out = capsys.readouterr().out
    assert "created" in out and "already exists, unchanged" in out
    assert _admins(isolated_ctx, email) == ["admin"]


def test_bootstrap_admin_prompts_when_the_variables_are_unset(isolated_ctx):
    email = f"prompted-{uuid.uuid4().hex[:8]}@bestie.test"
    env = {"DATABASE_URL": isolated_ctx.settings.database_url}
    code = bootstrap.main([], environ=env, ask=lambda _: email, ask_secret=lambda _: "Prompted-Pass-789")
    assert code == 0 and _admins(isolated_ctx, email) == ["admin"]


def test_bootstrap_admin_without_a_database_names_the_missing_variable(capsys):
    assert bootstrap.main([], environ={"ADMIN_EMAIL": "a@b.test", "ADMIN_PASSWORD": "Owner-Pass-123"}) == 2
    assert "DATABASE_URL or CLOUD_SQL_INSTANCE" in capsys.readouterr().err
