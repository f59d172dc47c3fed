"""The customer search's walk reads `search_text` (the display name and email lowered, kept by a
trigger) from an index alone, and finds exactly what ILIKE over the two columns finds
(docs/control-center.md, "Paging and search"; migrations 0035 to 0037)."""

from __future__ import annotations

from typing import Any

from infra import migrate
from shared.cc import customer_admin
from shared.context import AppContext

NO_FILTERS = customer_admin.CustomerFilters()


def _insert(ctx: AppContext, people: list[tuple[str | None, str | None]]) -> list[str]:
    """Insert (name, email) customers one second apart, oldest first; their ids."""
    with ctx.db.transaction() as tx:
        ids = [
            str(
                tx.scalar(
                    "INSERT INTO customers (display_name, email, is_anonymous, created_at)"
                    " VALUES (:n, :e, false, now() - make_interval(secs => :age)) RETURNING id",
                    n=name,
                    e=email,
                    age=len(people) - i,
                )
            )
            for i, (name, email) in enumerate(people)
        ]
        tx.commit()
    return ids


def _update(ctx: AppContext, assignment: str, customer_id: str) -> None:
    with ctx.db.transaction() as tx:
        tx.execute(f"UPDATE customers SET {assignment} WHERE id = CAST(:id AS uuid)", id=customer_id)  # noqa: S608
        tx.commit()


def _search_text(ctx: AppContext, customer_id: str) -> Any:
    return ctx.db.scalar("SELECT search_text FROM customers WHERE id = CAST(:id AS uuid)", id=customer_id)


def _found(ctx: AppContext, search: str, limit: int = 50) -> list[str]:
    return [c["id"] for c in customer_admin.list_customers(ctx, limit, None, search)["customers"]]


def _walk(ctx: AppContext, search: str, window: int = 1_000) -> list[str]:
    params = customer_admin.list_params(50, None, search, NO_FILTERS)
    return [str(r["id"]) for r in ctx.db.rows(customer_admin.SCAN_SQL, window=window, **params)]


def _indexes(ctx: AppContext, search: str) -> list[str]:
    params = customer_admin.list_params(50, None, search, NO_FILTERS)
    return [str(r["id"]) for r in ctx.db.rows(customer_admin.LIST_SQL, **params)]


def test_search_text_follows_every_write_of_the_name_and_the_email(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    (who,) = _insert(ctx, [("Dewi SANTOSO", "D.Santoso@Mail.Test")])
    assert _search_text(ctx, who) == "dewi santoso\x01d.santoso@mail.test"
    assert _found(ctx, "santoso") == [who]

    _update(ctx, "display_name = 'Ayu Lubis'", who)
    assert _search_text(ctx, who) == "ayu lubis\x01d.santoso@mail.test"
    assert _found(ctx, "dewi") == [] and _found(ctx, "LUBIS") == [who]

    _update(ctx, "email = NULL", who)
    assert _search_text(ctx, who) == "ayu lubis\x01"
    assert _found(ctx, "santoso") == []

    # Written directly, it is computed again all the same: it cannot drift from the columns.
    _update(ctx, "search_text = 'zzzq'", who)
    assert _search_text(ctx, who) == "ayu lubis\x01"
    assert _found(ctx, "zzzq") == []


def test_a_term_holding_the_separator_is_not_matched_across_the_name_and_the_email(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    _insert(ctx, [("Ayu", "ayu@mail.test"), ("Ayu", "ayu@mail.test")])
    spanning = "ayu\x01ayu@"
    assert len(_walk(ctx, spanning)) == 2  # the walk alone would find them in search_text
    assert _indexes(ctx, spanning) == []  # ILIKE does not
    assert _found(ctx, spanning, limit=1) == []  # nor does the search, though the walk would fill its page


def test_the_walk_and_the_indexes_find_the_same_customers_whatever_the_case_and_the_characters(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    _insert(
        ctx,
        [
            ("Élodie Ÿvonne", "elodie@mail.test"),
            ("ÉLODIE", None),
            (None, "ÉLO@MAIL.TEST"),
            ("Straße Sari", "strasse@mail.test"),
            ("İlham Nur", "ilham@mail.test"),
            ("50%_off Budi", "b_50@mail.test"),
            ("Budi 500ff", "b50@mail.test"),
            (None, None),
        ],
    )
    terms = ["élodie", "ÉLO", "élo@", "ss", "ß", "i", "İl", "%", "_", "50%_", "0%", "b_5", "@MAIL", "e", " "]
    for term in terms:
        assert _walk(ctx, term) == _indexes(ctx, term), term
    assert len(_walk(ctx, "élo")) == 3 and len(_walk(ctx, "50%_")) == 1


def test_the_walk_reads_only_its_index_once_the_table_is_vacuumed(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    with ctx.db.dedicated() as conn:
        # Committed durably: VACUUM marks no page all-visible while its inserter's commit record
        # may still be unflushed (the embedded server commits asynchronously), see lazy_scan_prune
        # in https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/access/heap/vacuumlazy.c
        conn.execute("SET synchronous_commit = on")
        conn.execute(
            "INSERT INTO customers (display_name, email, created_at)"
            " SELECT 'Person ' || g, 'p' || g || '@mail.test', now() - make_interval(secs => g)"
            " FROM generate_series(1, 20000) AS g"
        )
        # Sets the visibility map, as autovacuum does; INDEX_CLEANUP ON also clears the few
        # pages the reset of this reused database left dead rows in (VACUUM skips that step
        # when under 2 % of pages hold any, leaving those pages not all-visible).
        conn.execute("VACUUM (INDEX_CLEANUP ON, ANALYZE) customers")
    params = customer_admin.list_params(50, None, "person 1", NO_FILTERS)
    rows = ctx.db.rows("EXPLAIN (ANALYZE, COSTS OFF) " + customer_admin.SCAN_SQL, window=2_000, **params)
    plan = "\n".join(next(iter(r.values())) for r in rows)
    assert "Index Only Scan using customers_search_walk" in plan, plan
    assert "Heap Fetches: 0" in plan, plan


def test_the_backfill_fills_the_rows_written_before_the_trigger(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    with ctx.db.dedicated() as conn:
        conn.execute("ALTER TABLE customers DISABLE TRIGGER customers_search_text")
        try:
            conn.execute(  # more than one batch of 5,000
                "INSERT INTO customers (display_name, email) SELECT 'Person ' || g, 'P' || g || '@Mail.Test'"
                " FROM generate_series(1, 5003) AS g"
            )
        finally:
            conn.execute("ALTER TABLE customers ENABLE TRIGGER customers_search_text")
        assert conn.scalar("SELECT count(*) FROM customers WHERE search_text IS NULL") == 5_003
        (backfill,) = [m for m in migrate.discover() if m.version == "0036_customers_search_text_backfill"]
        assert not backfill.transactional
        conn.script(backfill.sql)
        assert conn.scalar("SELECT count(*) FROM customers WHERE search_text IS NULL") == 0
        wrong = conn.scalar(
            "SELECT count(*) FROM customers"
            " WHERE search_text <> lower(display_name) || chr(1) || lower(coalesce(email, ''))"
        )
        assert wrong == 0
    assert len(_found(ctx, "person 5003")) == 1
