"""squawk lints every migration after the baseline as the runner applies it."""

from pathlib import Path

from infra import lint_migrations


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


def test_the_repository_migrations_pass_the_lint():
    status, report = lint_migrations.lint()
    assert (status, report) == (0, "")


def test_an_index_built_in_a_transaction_after_the_baseline_fails_the_lint(tmp_path):
    _write(tmp_path, "0001_old.sql", "CREATE INDEX old_idx ON mitras (id);\n")  # before the baseline: not linted
    _write(tmp_path, "0011_new.sql", "CREATE INDEX new_idx ON mitras (id);\n")
    status, report = lint_migrations.lint(tmp_path)
    assert status == 1
    assert "0011_new.sql" in report and "require-concurrent-index-creation" in report
    assert "0001_old.sql" not in report


def test_a_concurrent_index_in_a_no_transaction_file_passes_the_lint(tmp_path):
    sql = "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS new_idx ON mitras (id);\n"
    _write(tmp_path, "0011_new.sql", sql)
    assert lint_migrations.lint(tmp_path) == (0, "")


def test_a_concurrent_index_in_a_transactional_file_fails_the_lint(tmp_path):
    _write(tmp_path, "0011_new.sql", "CREATE INDEX CONCURRENTLY IF NOT EXISTS new_idx ON mitras (id);\n")
    status, report = lint_migrations.lint(tmp_path)
    assert status == 1 and "0011_new.sql" in report


def test_a_nullable_column_added_in_a_transactional_file_passes_the_lint(tmp_path):
    _write(tmp_path, "0011_new.sql", "-- Why: a note per mitra.\nALTER TABLE mitras ADD COLUMN note text;\n")
    assert lint_migrations.lint(tmp_path) == (0, "")
