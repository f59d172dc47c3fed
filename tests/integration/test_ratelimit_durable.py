"""Durable windows live in Postgres only; expired rows of forgotten subjects are cleared as hits arrive."""

from __future__ import annotations

import uuid
from datetime import timedelta

from shared import ratelimit
from shared.context import AppContext


def test_a_durable_window_is_counted_in_postgres_and_never_in_valkey(isolated_ctx: AppContext) -> None:
    rule = ratelimit.Limit("lock-test", 2, 600, durable=True)
    subject = uuid.uuid4().hex
    ratelimit.record(isolated_ctx, rule, subject)
    ratelimit.record(isolated_ctx, rule, subject)
    assert ratelimit.exceeded(isolated_ctx, rule, subject)
    assert isolated_ctx.valkey.exists(isolated_ctx.keys.rate(rule.bucket, subject)) == 0
    rows = "SELECT count(*) FROM rate_limit_hits WHERE bucket = :b AND subject = :s"
    assert isolated_ctx.db.scalar(rows, b=rule.bucket, s=subject) == 2
    ratelimit.reset(isolated_ctx, rule, subject)
    assert not ratelimit.exceeded(isolated_ctx, rule, subject)


def test_expired_rows_of_subjects_that_never_return_are_cleared(isolated_ctx: AppContext) -> None:
    rule = ratelimit.Limit("lock-test", 5, 600, durable=True)
    long_ago = isolated_ctx.now() - timedelta(hours=2)
    with isolated_ctx.db.transaction() as tx:
        for n in range(30):
            tx.execute(
                "INSERT INTO rate_limit_hits (bucket, subject, at) VALUES (:b, :s, :at)",
                b=rule.bucket,
                s=f"gone-{n}",
                at=long_ago,
            )
        tx.commit()
    ratelimit.record(isolated_ctx, rule, "someone-new")
    left = isolated_ctx.db.rows("SELECT subject FROM rate_limit_hits WHERE bucket = :b", b=rule.bucket)
    assert [r["subject"] for r in left] == ["someone-new"]
