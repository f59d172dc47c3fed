"""The retention sweep: rows past their table's retention go, in bounded batches; nothing else does."""

from __future__ import annotations

from shared import retention
from shared.context import AppContext
from shared.sweeps import jobs
from tests.support import apps
from tests.support.auth_support import phone, request_otp
from tests.support.chat_support import active_session, send

RETAINED = {
    "sweep_runs": ["started_at"],
    "rate_limit_hits": ["at"],
    "otp_requests": ["created_at", "expires_at"],
    "auth_sessions": ["created_at", "last_used_at", "expires_at", "revoked_at"],
    "pairing_offers": ["offered_at"],
    "mitra_status_logs": ["at"],
    "chat_session_events": ["at"],
}
KEPT = ("customers", "mitras", "chat_sessions", "chat_messages", "cc_audit_log", "control_center_users", "app_config")


def _counts(ctx: AppContext, tables: list[str] | tuple[str, ...]) -> dict[str, int]:
    return {t: int(ctx.db.scalar(f"SELECT count(*) FROM {t}")) for t in tables}  # noqa: S608 (our table names)


def _age(ctx: AppContext, days: int) -> None:
    """Move every row of the retained tables `days` into the past."""
    with ctx.db.transaction() as tx:
        for table, columns in RETAINED.items():
            sets = ", ".join(f"{c} = {c} - make_interval(days => :d)" for c in columns)
            tx.execute(f"UPDATE {table} SET {sets}", d=days)  # noqa: S608 (our table and column names)
        tx.commit()


def _a_day_of_use(ctx: AppContext) -> None:
    """Rows in every retained table, written the way the code writes them."""
    pair = active_session(ctx)
    assert send("client", pair.customer, pair.session_id, "hello").status_code == 201
    assert request_otp("customer", phone()).status_code == 201
    signed_in = apps.client("auth_anonymous").post("/api/shared/auth/anonymous").json
    logout = apps.client("auth_logout").post(
        "/api/shared/auth/logout", headers={"Authorization": f"Bearer {signed_in['access_token']}"}
    )
    assert logout.status_code == 204
    with ctx.db.transaction() as tx:
        tx.execute("INSERT INTO sweep_runs (sweep, schedule_time, started_at) VALUES ('x', 't', now())")
        tx.execute("INSERT INTO rate_limit_hits (bucket, subject, at) VALUES ('b', 's', now())")
        tx.commit()


def test_rows_inside_their_retention_are_kept(isolated_ctx: AppContext):
    _a_day_of_use(isolated_ctx)
    before = _counts(isolated_ctx, [*RETAINED, *KEPT])
    assert all(before[t] > 0 for t in RETAINED), before
    _age(isolated_ctx, 1)  # younger than the shortest retention (2 days)
    result = jobs.retention_pass(isolated_ctx)
    assert result["deleted"] == 0
    assert _counts(isolated_ctx, [*RETAINED, *KEPT]) == before


def test_each_table_loses_exactly_the_rows_past_its_own_retention(isolated_ctx: AppContext):
    _a_day_of_use(isolated_ctx)
    before = _counts(isolated_ctx, [*RETAINED, *KEPT])
    _age(isolated_ctx, 8)  # past 2 and 7 days, inside 30, 180 and 365
    deleted = retention.delete_expired(isolated_ctx)
    after = _counts(isolated_ctx, [*RETAINED, *KEPT])
    gone = {"sweep_runs", "rate_limit_hits", "otp_requests"}
    assert {t for t in RETAINED if after[t] == 0} == gone
    assert all(deleted[t] == before[t] for t in gone)
    assert {t: after[t] for t in RETAINED if t not in gone} == {t: before[t] for t in RETAINED if t not in gone}

    _age(isolated_ctx, 400)  # past every retention
    retention.delete_expired(isolated_ctx)
    after = _counts(isolated_ctx, [*RETAINED, *KEPT, "refresh_tokens"])
    assert all(after[t] == 0 for t in [*RETAINED, "refresh_tokens"]), after  # tokens go with their session
    assert {t: after[t] for t in KEPT} == {t: before[t] for t in KEPT}  # sessions, messages, audit: kept


def test_a_pass_deletes_in_bounded_batches_and_the_next_pass_goes_on(isolated_ctx: AppContext):
    with isolated_ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO rate_limit_hits (bucket, subject, at)"
            " SELECT 'b', 's' || n, now() - interval '10 days' FROM generate_series(1, 2500) n"
        )
        tx.commit()
    [rule] = [r for r in retention.RULES if r.table == "rate_limit_hits"]
    ticks = iter(range(100))
    # The clock passes the time budget after the first batch: one batch, then stop.
    first = retention.delete_expired(isolated_ctx, (rule,), max_seconds=1.5, monotonic=lambda: float(next(ticks)))
    assert first == {"rate_limit_hits": retention.BATCH}
    rest = retention.delete_expired(isolated_ctx, (rule,))
    assert rest == {"rate_limit_hits": 2500 - retention.BATCH}
    assert _counts(isolated_ctx, ["rate_limit_hits"]) == {"rate_limit_hits": 0}
