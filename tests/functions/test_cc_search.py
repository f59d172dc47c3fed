"""Staff search of customers: a phone number typed from its start matches by prefix, digits
typed otherwise anywhere; a common term walks the newest rows instead of the indexes and finds
exactly the same pages (docs/control-center.md, "Paging and search")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import paging
from shared.cc import customer_admin
from shared.context import AppContext
from tests.support import apps
from tests.support.tokens import bearer, cc_token

START = datetime(2026, 11, 1, tzinfo=UTC)


def _customers(ctx: AppContext, people: list[tuple[str, str | None, str | None]]) -> list[str]:
    """Insert (name, email, phone) customers one minute apart, oldest first; their ids."""
    ids = []
    with ctx.db.transaction() as tx:
        for minute, (name, email, phone) in enumerate(people):
            ids.append(
                str(
                    tx.scalar(
                        "INSERT INTO customers (display_name, email, phone_e164, is_anonymous, created_at)"
                        " VALUES (:n, :e, :p, false, :at) RETURNING id",
                        n=name,
                        e=email,
                        p=phone,
                        at=START + timedelta(minutes=minute),
                    )
                )
            )
        tx.commit()
    return ids


def test_a_number_typed_from_its_start_matches_phones_beginning_with_it_and_other_digits_anywhere(
    isolated_ctx: AppContext,
) -> None:
    ctx = isolated_ctx
    starts, inside = _customers(
        ctx,
        [("Ayu", None, "+6281234567890"), ("Budi", None, "+6285762812345")],  # the second holds 62812345 inside
    )
    h = bearer(cc_token(ctx, "operator"))
    listing = apps.client("customers_list")

    def ids(search: str) -> list[str]:
        resp = listing.get("/internal/customers", query_string={"search": search}, headers=h)
        assert resp.status_code == 200, resp.json
        return [c["id"] for c in resp.json["customers"]]

    assert ids("0812 345") == [starts]  # the start of a number: only phones beginning +62812345
    assert ids("+62 812 345") == [starts] and ids("(0812) 3456-7890") == [starts]
    assert ids("+62 857") == [inside]
    assert ids("812345") == [inside, starts]  # digits typed otherwise: anywhere in the number
    assert ids("3456 7890") == [starts]  # the middle and end of a number still find it
    assert ids("5762 8") == [inside]
    assert ids("0857 9") == []


def _expected(people: list[tuple[str, str | None, str | None]], ids: list[str], term: str) -> list[str]:
    """Newest first, the customers whose name or email holds the term, case-insensitively."""
    found = [i for i, (name, email, _) in zip(ids, people, strict=True) if term.lower() in f"{name}\n{email}".lower()]
    return found[::-1]


@pytest.mark.parametrize(
    ("term", "match_cost", "path"),
    [
        ("SARI", 30, "probe"),  # the newest rows fill the page
        ("50%", 30, "probe"),
        ("halim", 30, "scan"),  # too few in the probe: 16 rows to walk, against 15 matches at 30 each
        ("halim", 1, "indexes"),  # the same, were a match as cheap as a walked row
        ("zed", 30, "indexes"),  # none in the probe
    ],
)
def test_a_search_walking_the_newest_rows_pages_exactly_as_the_indexes_do(
    isolated_ctx: AppContext, monkeypatch: pytest.MonkeyPatch, term: str, match_cost: int, path: str
) -> None:
    ctx = isolated_ctx
    people: list[tuple[str, str | None, str | None]] = [("Zed Old", None, None)]
    for n in range(60):  # "sari" and "50%" in every other row (by name or by email), "halim" in every third
        name = ("Sari" if n % 4 == 0 else "Budi") + (" Halim" if n % 3 == 0 else " Lubis") + (" 50%" if n % 2 else "")
        people.append((name, f"SARI.{n}@mail.test" if n % 4 == 2 else f"b{n}@mail.test", None))
    ids = _customers(ctx, people)
    with ctx.db.transaction() as tx:
        tx.execute("ANALYZE customers")  # the table's size, as autovacuum keeps it
        tx.commit()
    monkeypatch.setattr(customer_admin, "PROBE_ROWS", 8)
    monkeypatch.setattr(customer_admin, "SCAN_ROWS", 40)
    monkeypatch.setattr(customer_admin, "MATCH_COST", match_cost)
    statements: list[str] = []
    rows = ctx.db.rows

    def spied(sql: str, **params: Any) -> Any:
        statements.append(sql)
        return rows(sql, **params)

    monkeypatch.setattr(ctx.db, "rows", spied)

    seen: list[str] = []
    cursor = None
    while True:
        page = customer_admin.list_customers(ctx, 3, cursor, paging.search_text(term))
        seen += [c["id"] for c in page["customers"]]
        if path == "probe":  # the newest 8 rows filled the page
            assert statements == [customer_admin.SCAN_SQL] or page["next_cursor"] is None
        statements.clear()
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == _expected(people, ids, term)

    statements.clear()
    customer_admin.list_customers(ctx, 3, None, term)
    probe_and_last = [customer_admin.SCAN_SQL] + {
        "probe": [],
        "scan": [customer_admin.SCAN_SQL],
        "indexes": [customer_admin.LIST_SQL],
    }[path]
    assert [s for s in statements if s != customer_admin.TABLE_ROWS_SQL] == probe_and_last
