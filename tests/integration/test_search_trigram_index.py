"""Staff search can use its indexes: every branch of the search's OR has one, so
Postgres can answer from the indexes instead of reading the table (docs/control-center.md,
"Paging and search"; the latency is measured by bench/search.py, not here)."""

from __future__ import annotations

from shared.cc import customer_admin
from shared.context import AppContext


def _plan(ctx: AppContext, search: str) -> str:
    params = customer_admin.list_params(50, None, search, customer_admin.CustomerFilters())
    with ctx.db.transaction() as tx:
        # A small table is cheapest to read whole (or in created_at order, filtered); this asks
        # whether the search's own indexes can serve it at all, which decides it at a million rows.
        tx.execute("SET LOCAL enable_seqscan = off")
        tx.execute("SET LOCAL enable_indexscan = off")
        return "\n".join(next(iter(r.values())) for r in tx.rows("EXPLAIN " + customer_admin.LIST_SQL, **params))


def test_pg_trgm_is_installed_and_the_customer_search_can_use_an_index_for_every_branch(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    assert ctx.db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'")
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO customers (display_name, phone_e164, email)"
            " SELECT 'Person ' || g, '+62812' || lpad(g::text, 8, '0'), 'p' || g || '@mail.test'"
            " FROM generate_series(1, 200) AS g"
        )
        tx.commit()
    # Digits match a phone anywhere through its trigram index, but a number typed from its start
    # (a leading 0 or +) matches phones beginning with it, through the prefix B-tree.
    phone_index = {"person 17": "customers_phone_trgm", "0812 0000 0017": "customers_phone_prefix"}
    for search in ("person 17", "0812 0000 0017", "zzzq"):
        plan = _plan(ctx, search)
        wanted = (
            "customers_display_name_trgm",
            "customers_email_trgm",
            phone_index.get(search, "customers_phone_trgm"),
        )
        for index in wanted:
            assert f"Bitmap Index Scan on {index}" in plan, (search, plan)
        assert "Seq Scan" not in plan, plan
    found = customer_admin.list_customers(ctx, 50, None, "person 17")["customers"]
    assert sorted(c["display_name"] for c in found) == ["Person 17", "Person 170", "Person 171", "Person 172",
                                                        "Person 173", "Person 174", "Person 175", "Person 176",
                                                        "Person 177", "Person 178", "Person 179"]  # fmt: skip


def test_the_mitra_search_columns_have_trigram_indexes(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    rows = ctx.db.rows(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('mitras', 'customers')"
        " AND indexdef LIKE '%gin_trgm_ops%' ORDER BY indexname"
    )
    assert [r["indexname"] for r in rows] == [
        "customers_display_name_trgm",
        "customers_email_trgm",
        "customers_phone_trgm",
        "mitras_display_name_trgm",
        "mitras_phone_trgm",
    ]
