"""Staff search at 1M customers and 100k mitras: the search indexes against the goal (≤ 20 ms).

On embedded servers of its own: the customers and mitras are written with one bulk INSERT
each (generate_series), the search indexes (trigram GIN, migrations 0028 to 0032; the phone
prefix B-trees, 0033 and 0034) are dropped first and built after the load, as the migration
would on a full table, and the build time is shown.
Each search runs the project's own query (`shared.cc.customer_admin.list_customers`,
`shared.mitras.list_page`: the first page of 50, newest first). Side by side in the same run:
- the floor: a primary-key lookup of one customer (`SELECT … WHERE id = …`), the cheapest
  indexed read, so the ratio of a search to it holds when the machine's speed drifts;
- the same customer searches before the indexes were built (a whole-table scan);
- the same customer searches by the previous query (every match through the trigram indexes,
  a phone number matched anywhere: no newest-first walk, no prefix B-tree), `PREVIOUS_SQL`;
- the same customer searches by the previous walk (each walked row read from the table and its
  name and email lowered, the thresholds of then), `PREVIOUS_WALK_SQL`; a search, its previous
  walk and its previous query run in turns, so load on the shared machine falls on all three.
After the index builds it runs `VACUUM (ANALYZE)`, as autovacuum would: the walk is an
index-only scan, which skips the table only on pages the visibility map marks all-visible.
Last, the write cost: a one-customer insert with the walk's trigger and index, against the
schema before them (no trigger, the narrower keyset index), and the customer index sizes.
The load average (1 min) is printed at the start and the end of the timings.

    .venv/bin/python -m bench.search [--customers 1000000] [--mitras 100000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import own_servers
from infra import migrate
from shared import paging

GOAL_MS = 20.0
TRGM_MIGRATIONS = (
    "0028_customers_name_trgm",
    "0029_customers_email_trgm",
    "0030_customers_phone_trgm",
    "0031_mitras_name_trgm",
    "0032_mitras_phone_trgm",
    "0033_customers_phone_prefix",
    "0034_mitras_phone_prefix",
    "0037_customers_search_walk",
)
TRGM_INDEXES = (
    "customers_display_name_trgm",
    "customers_email_trgm",
    "customers_phone_trgm",
    "mitras_display_name_trgm",
    "mitras_phone_trgm",
    "customers_phone_prefix",
    "mitras_phone_prefix",
    "customers_search_walk",
)
# Name parts the generated people are made of (Indonesian given names and family names).
FIRST = ["Ayu", "Budi", "Dewi", "Eka", "Fajar", "Gita", "Hadi", "Indah", "Joko", "Kartika",
         "Lestari", "Made", "Nur", "Putri", "Rina", "Sari", "Tono", "Utami", "Wulan", "Yusuf"]  # fmt: skip
LAST = ["Santoso", "Wijaya", "Saputra", "Hidayat", "Kusuma", "Pratama", "Nugroho", "Siregar",
        "Lubis", "Hasibuan", "Simanjuntak", "Halim", "Gunawan", "Setiawan", "Purnama"]  # fmt: skip


# Person g: a first and a family name (300 combinations, no digits, as real names have), an
# 8-digit subscriber number spread over the range by a multiplier prime to 10^8 (unique, not
# sequential), and an email made of the names and g.
_NAME = "(CAST(:first AS text[]))[1 + g % 20] || ' ' || (CAST(:last AS text[]))[1 + (g / 20) % 15]"
_NUMBER = "lpad(((CAST(g AS bigint) * 48271) % 100000000)::text, 8, '0')"


# The newest-first walk as it was before `search_text` and its index (0035 to 0038): every
# walked row read from the table and its name and email lowered, with the thresholds of then.
PREVIOUS_WALK_SQL = (
    "SELECT {columns} FROM (SELECT {columns} FROM customers ORDER BY created_at DESC, id DESC LIMIT :window) AS newest"
    " WHERE strpos(lower(display_name), lower(CAST(:needle AS text))) > 0"
    "   OR strpos(lower(email), lower(CAST(:needle AS text))) > 0"
    "   OR (CAST(:q_phone AS text) IS NOT NULL AND strpos(phone_e164, CAST(:needle AS text)) > 0)"
    "   OR strpos(phone_e164, CAST(:digits AS text)) > 0 OR starts_with(phone_e164, CAST(:prefix AS text))"
    " ORDER BY created_at DESC, id DESC LIMIT :n"
)
PREVIOUS_WALK = {"probe_rows": 2_000, "scan_rows": 40_000, "match_cost": 30}
INSERTS = 300  # single-row customer inserts timed for the write cost


# The customer search as it was before the newest-first walk and the phone prefix B-tree (no
# cursor or filter, which fold away when unset), measured beside the project's own query.
PREVIOUS_SQL = (
    "SELECT {columns} FROM customers WHERE display_name ILIKE :q OR email ILIKE :q OR phone_e164 LIKE :q"
    " OR phone_e164 LIKE CAST(:phone AS text) ORDER BY created_at DESC, id DESC LIMIT 51"
)


def phone_of(g: int, operator: str = "812") -> str:
    """The E.164 phone the load gives person g."""
    return f"+62{operator}{(g * 48271) % 100_000_000:08d}"


def _load(run: Callable[..., Any], customers: int, mitras: int) -> None:
    """Bulk-write the people (one statement per table), with display name, phone and email."""
    run(
        "INSERT INTO customers (display_name, phone_e164, email, is_anonymous, created_at)"  # noqa: S608 (constants)
        f" SELECT {_NAME}, '+62812' || {_NUMBER},"
        "        lower(replace(" + _NAME + ", ' ', '.')) || g || '@mail.test', false, now() - make_interval(secs => g)"
        " FROM generate_series(1, CAST(:n AS int)) AS g",
        first=FIRST,
        last=LAST,
        n=customers,
    )
    run(
        "INSERT INTO mitras (phone_e164, display_name, created_at)"  # noqa: S608 (constants)
        f" SELECT '+62813' || {_NUMBER}, {_NAME}, now() - make_interval(secs => g)"
        " FROM generate_series(1, CAST(:n AS int)) AS g",
        first=FIRST,
        last=LAST,
        n=mitras,
    )


def _timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    return _side_by_side([fn], repeat)[0]


def _side_by_side(fns: list[Callable[[], Any]], repeat: int) -> list[dict[str, float]]:
    """Median and p95 ms of each of `fns`, run in turns: every repetition runs each once, in an
    order rotating by one, so a burst of load on the shared machine falls on all of them alike."""
    for fn in fns:
        fn()  # warm: plan cache, buffers
    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeat):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            started = time.perf_counter()
            fns[j]()
            times[j].append((time.perf_counter() - started) * 1000)
    figures = []
    for ms in times:
        ms.sort()
        figures.append({"median_ms": statistics.median(ms), "p95_ms": ms[min(len(ms) - 1, int(len(ms) * 0.95))]})
    return figures


def _write_cost(ctx: Any, ddl: Callable[[str], None], walk_index_sql: str) -> tuple[dict[str, float], dict[str, float]]:
    """Median ms of a one-row customer insert (its own commit) now, with the schema before
    search_text (no trigger, the narrower keyset index instead of the walk's), and now again;
    and the customer indexes' sizes in MB (the narrower keyset index's as built for the middle run)."""
    phones = itertools.count(1)

    def insert() -> None:
        k = next(phones)
        with ctx.db.transaction() as tx:
            tx.execute(
                "INSERT INTO customers (display_name, phone_e164, email, is_anonymous) VALUES (:n, :p, :e, false)",
                n=f"Sari Lubis {k}",
                p=f"+62899{k:08d}",
                e=f"sari.lubis{k}@mail.test",
            )
            tx.commit()

    def index_sizes() -> dict[str, float]:
        rows = ctx.db.rows(
            "SELECT c.relname AS name, pg_relation_size(c.oid) AS size FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = CAST('customers' AS regclass)"
        )
        return {r["name"]: r["size"] / 2**20 for r in rows}

    now = _timed(insert, INSERTS)["median_ms"]
    sizes = index_sizes()
    ddl("ALTER TABLE customers DISABLE TRIGGER customers_search_text")
    ddl("DROP INDEX customers_search_walk")
    ddl("CREATE INDEX customers_created_idx ON customers (created_at DESC, id DESC)")
    before = _timed(insert, INSERTS)["median_ms"]
    sizes["customers_created_idx"] = index_sizes()["customers_created_idx"]
    ddl("DROP INDEX customers_created_idx")
    ddl("ALTER TABLE customers ENABLE TRIGGER customers_search_text")
    ddl(walk_index_sql)
    again = _timed(insert, INSERTS)["median_ms"]
    return {"now": now, "before": before, "now_again": again}, sizes


def measure(customers: int = 1_000_000, mitras: int = 100_000, repeat: int = 30, before_repeat: int = 3) -> dict:
    """Every figure of one run (a JSON-able dict)."""
    from shared import mitras as mitra_store
    from shared.cc import customer_admin

    with own_servers("bench-search-") as ctx:
        # The load and the index builds outlast the pool's 10 s socket timeout: one plain
        # connection of its own, with no timeouts, runs them.
        import pg8000.native

        from shared.db import parse_database_url

        url = parse_database_url(ctx.settings.database_url)
        bulk = pg8000.native.Connection(url.user, host=url.host or "localhost", port=url.port, database=url.database)
        bulk.run("SET statement_timeout = 0")
        # Committed durably (the embedded server commits asynchronously): VACUUM marks no page
        # all-visible while its inserter's commit record may be unflushed, and the walk's
        # index-only scan needs the visibility map (lazy_scan_prune in
        # https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/access/heap/vacuumlazy.c).
        bulk.run("SET synchronous_commit = on")

        def ddl(sql: str) -> None:
            for statement in filter(str.strip, sql.split(";")):
                bulk.run(statement)

        ddl("".join(f"DROP INDEX {name};" for name in TRGM_INDEXES))  # built after the load, as on a full table
        started = time.perf_counter()
        _load(bulk.run, customers, mitras)
        load_s = time.perf_counter() - started
        ddl("VACUUM ANALYZE customers")
        ddl("VACUUM ANALYZE mitras")

        g = customers // 2
        email = f"{FIRST[g % 20].lower()}.{LAST[(g // 20) % 15].lower()}{g}@"
        phone = phone_of(g)
        local = "0" + phone[3:6] + " " + phone[6:10] + " " + phone[10:]  # as staff type it: 0812 3456 7890
        terms = {  # customer searches: name -> the text staff type
            f"customer email, one match ('{email}')": email,
            f"customer phone, one match ('{local}')": local,
            f"customer phone, last 6 digits ('{phone[-6:]}')": phone[-6:],
            f"customer phone, a number's start ('{local[:9]}')": local[:9],
            "customer name, many matches ('dewi')": "dewi",
            "customer full name ('dewi santoso')": "dewi santoso",
            "customer email, 1,000 matches ('999@mail')": "999@mail",
            "customer, no match ('zzzq')": "zzzq",
        }
        searches: dict[str, Callable[[], Any]] = {
            **{name: (lambda q=q: _customers(q)) for name, q in terms.items()},  # type: ignore[misc]
            "mitra name, many matches ('budi')": lambda: _mitras("budi"),
            f"mitra phone, one match ('{phone_of(mitras // 2, '813')}')": lambda: _mitras(phone_of(mitras // 2, "813")),
            "mitra, no match ('zzzq')": lambda: _mitras("zzzq"),
        }

        def _customers(q: str) -> list[Any]:
            return list(customer_admin.list_customers(ctx, 50, None, q)["customers"])

        def _previous(q: str) -> list[Any]:
            sql = PREVIOUS_SQL.format(columns=customer_admin.COLUMNS)
            return ctx.db.rows(sql, q=paging.like_pattern(q), phone=paging.phone_pattern(q))

        def _previous_walk(q: str) -> list[Any]:
            """The customer search before search_text: the same probe, walk and indexes, as they were."""
            params = customer_admin.list_params(50, None, q, no_filters)
            walk_sql = PREVIOUS_WALK_SQL.format(columns=customer_admin.COLUMNS)
            probe, scan, cost = PREVIOUS_WALK["probe_rows"], PREVIOUS_WALK["scan_rows"], PREVIOUS_WALK["match_cost"]
            wanted = params["n"]
            rows = ctx.db.rows(walk_sql, window=probe, **params)
            found = len(rows)
            if 0 < found < wanted:
                walk = wanted * probe / found
                table_rows = ctx.db.scalar(customer_admin.TABLE_ROWS_SQL) or -1
                if walk <= scan / 2 and walk < cost * found / probe * table_rows:
                    rows = ctx.db.rows(walk_sql, window=scan, **params)
            if len(rows) < wanted:
                rows = ctx.db.rows(customer_admin.LIST_SQL, **params)
            return rows

        def _mitras(q: str) -> list[Any]:
            return mitra_store.list_page(ctx, 50, None, search=q)[0]

        no_filters = customer_admin.CustomerFilters()
        ids = [str(r["id"]) for r in ctx.db.rows("SELECT id FROM customers TABLESAMPLE SYSTEM (1) LIMIT 1000")]
        rng = random.Random(7)

        def floor() -> Any:
            return ctx.db.one(
                f"SELECT {customer_admin.COLUMNS} FROM customers WHERE id = CAST(:id AS uuid)",  # noqa: S608
                id=rng.choice(ids),
            )

        # Checks that the searches find what they should (a fast wrong answer is no answer).
        assert len(_customers(email)) == 1 and len(_customers(local)) == 1 and _customers("zzzq") == []
        assert len(_customers("dewi")) == 50 and len(_mitras(phone_of(mitras // 2, "813"))) == 1

        before = {name: _timed(fn, before_repeat) for name, fn in searches.items() if name.startswith("customer")}
        started = time.perf_counter()
        files = {m.version: m for m in migrate.discover()}
        for version in TRGM_MIGRATIONS:
            ddl(files[version].sql)  # the migration's own statement, on the full table
        build_s = time.perf_counter() - started
        # As autovacuum would: statistics, and the visibility map the index-only walk relies on.
        ddl("VACUUM (ANALYZE) customers")
        ddl("VACUUM (ANALYZE) mitras")
        load_average = [os.getloadavg()[0]]
        floor_figure = _timed(floor, repeat * 10)
        # Each customer search in turns with the previous walk and the previous query (paired figures).
        paired = {
            name: _side_by_side([searches[name], lambda q=q: _previous_walk(q), lambda q=q: _previous(q)], repeat)  # type: ignore[misc]
            for name, q in terms.items()
        }
        after = {name: paired[name][0] if name in paired else _timed(fn, repeat) for name, fn in searches.items()}
        previous_walk = {name: figures[1] for name, figures in paired.items()}
        previous = {name: figures[2] for name, figures in paired.items()}
        floor_again = _timed(floor, repeat * 10)
        load_average.append(os.getloadavg()[0])
        for name, q in terms.items():  # the same customers, whichever way
            assert [str(r["id"]) for r in _previous_walk(q)][:50] == [c["id"] for c in _customers(q)], name
        plan = ctx.db.rows(
            "EXPLAIN " + customer_admin.LIST_SQL, **customer_admin.list_params(50, None, "zzzq", no_filters)
        )
        walk_plans = {
            q: [
                next(iter(r.values()))
                for r in ctx.db.rows(
                    "EXPLAIN (ANALYZE, BUFFERS) " + customer_admin.SCAN_SQL,
                    window=customer_admin.SCAN_ROWS,
                    **customer_admin.list_params(50, None, q, no_filters),
                )
            ]
            for q in ("dewi santoso", "999@mail")
        }
        inserts, sizes = _write_cost(ctx, ddl, files["0037_customers_search_walk"].sql)
        bulk.close()
    worst = max(v["median_ms"] for v in after.values())
    floor_ms = statistics.median([floor_figure["median_ms"], floor_again["median_ms"]])
    return {
        "customers": customers,
        "mitras": mitras,
        "load_s": load_s,
        "index_build_s": build_s,
        "floor_ms": floor_ms,
        "after": after,
        "before": before,
        "previous": previous,
        "previous_walk": previous_walk,
        "load_average": load_average,
        "walk_plans": walk_plans,
        "insert_ms": inserts,
        "index_mb": sizes,
        "worst_ms": worst,
        "worst_ratio": worst / floor_ms,
        "goal_ms": GOAL_MS,
        "met": worst <= GOAL_MS,
        "plan_no_match": [next(iter(r.values())) for r in plan],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--mitras", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args(argv)
    r = measure(args.customers, args.mitras, args.repeat)
    print(f"{r['customers']:,} customers, {r['mitras']:,} mitras: loaded in {r['load_s']:.1f} s,"
          f" search indexes built in {r['index_build_s']:.1f} s")  # fmt: skip
    print(f"floor (primary-key lookup of a customer): {r['floor_ms']:.3f} ms median")
    print(
        "load average (1 min) at the start and the end of the timings:",
        " / ".join(f"{a:.1f}" for a in r["load_average"]),
    )
    head = f"{'median':>9s} {'p95':>9s} {'÷ floor':>8s} {'lower walk':>10s} {'previous':>10s} {'no index':>10s}"
    print(f"{'search (first page of 50)':58s} {head}")
    for name, fig in r["after"].items():
        walk, previous, no_index = (r[k].get(name) for k in ("previous_walk", "previous", "before"))
        walked = f"{walk['median_ms']:7.2f} ms" if walk else ""
        prev = f"{previous['median_ms']:7.2f} ms" if previous else ""
        tail = f"{no_index['median_ms']:8.1f} ms" if no_index else ""
        ratio = fig["median_ms"] / r["floor_ms"]
        figures = f"{fig['median_ms']:6.2f} ms {fig['p95_ms']:6.2f} ms {ratio:7.1f}×"
        print(f"{name:58s} {figures} {walked:>10s} {prev:>10s} {tail:>10s}")
    for term, lines in r["walk_plans"].items():
        scan = [
            line.strip() for line in lines if "Index Only Scan" in line or "Heap Fetches" in line or "Execution" in line
        ]
        print(f"walk of '{term}' (EXPLAIN ANALYZE):", "; ".join(scan))
    ins = r["insert_ms"]
    print(f"one-customer insert: {ins['now']:.3f} ms and {ins['now_again']:.3f} ms with search_text and the walk's"
          f" index, {ins['before']:.3f} ms before (no trigger, the narrower keyset index)")  # fmt: skip
    print("customer index sizes:", ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(r["index_mb"].items())))
    print(f"worst median {r['worst_ms']:.2f} ms ({r['worst_ratio']:.1f}× the floor); goal ≤ {GOAL_MS:.0f} ms:"
          f" {'met' if r['met'] else 'NOT met'}")  # fmt: skip
    if args.json:
        print(json.dumps(r))
    return 0 if r["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
