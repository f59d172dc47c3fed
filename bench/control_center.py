"""Control-center reads at scale and what exact deadlines cost a session read.

Through the real entry points (functions-framework's create_app) against one Postgres and
Valkey (embedded unless DATABASE_URL / VALKEY_URL are set):
- customer search over BENCH_CUSTOMERS customers (trigram-indexed; bench.search measures it at 1M),
  the first page, and a page deep in the list by cursor (a keyset range scan);
- GET of a chat session that is not overdue (settle is a check in Python: no extra
  statement) next to GET of one past its payment deadline (the read expires it).
Run: `.venv/bin/python -m bench.control_center`.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import median_ms

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "20000"))
READS = int(os.environ.get("BENCH_READS", "50"))


def main() -> int:
    from infra import embedded, gateway, migrate

    with embedded.services() as env:
        os.environ.update(env)
        os.environ.setdefault("AUTH_JWT_SECRET", "bench-secret-" + uuid.uuid4().hex * 2)
        os.environ.setdefault("VALKEY_PREFIX", f"bench{uuid.uuid4().hex[:6]}:")
        from shared import context, manifest
        from shared.auth.principal import Principal
        from shared.auth.tokens import create_session, encode_access

        ctx = context.init()
        migrate.migrate(ctx.db)

        def token(user_type: str, user_id: str, role: str | None = None) -> dict[str, str]:
            with ctx.db.transaction() as tx:
                sid = create_session(tx, ctx.settings, user_type, user_id, ctx.now())
                tx.commit()
            return {
                "Authorization": "Bearer "
                + encode_access(ctx.settings, Principal(user_type, user_id, sid, role), ctx.now())
            }

        with ctx.db.transaction() as tx:
            tx.execute(
                "INSERT INTO customers (display_name, phone_e164, email, is_anonymous, created_at)"
                " SELECT 'Customer ' || g, '+62813' || lpad(g::text, 8, '0'), 'c' || g || '@mail.test', false,"
                "        now() - make_interval(secs => g)"
                " FROM generate_series(1, CAST(:n AS int)) AS g",
                n=CUSTOMERS,
            )
            staff = str(
                tx.scalar(
                    "INSERT INTO control_center_users (email, password_hash, role) VALUES (:e, 'x', 'operator')"
                    " RETURNING id",
                    e=f"bench-{uuid.uuid4().hex[:8]}@bestie.test",
                )
            )
            tx.execute("ANALYZE customers")
            tx.commit()
        cc = token("cc", staff, "operator")
        app = {
            ep: gateway.build_app(manifest.load().by_entry_point(ep)).test_client()
            for ep in ("customers_list", "pairing_get")
        }

        def customers(query: dict[str, str]) -> Any:
            resp = app["customers_list"].get("/internal/customers", query_string=query, headers=cc)
            assert resp.status_code == 200, resp.json
            return resp.json

        deep = {"limit": "50"}
        for _ in range(CUSTOMERS // 2 // 50):
            deep = {"limit": "50", "cursor": customers(deep)["next_cursor"]}
        results = {
            "first page (50)": median_ms(lambda: customers({"limit": "50"}), READS),
            f"page at row {CUSTOMERS // 2}": median_ms(lambda: customers(deep), READS),
            "search phone 0813000123": median_ms(lambda: customers({"search": "0813000123"}), READS),
            "search name 'customer 1999'": median_ms(lambda: customers({"search": "customer 1999"}), READS),
            "search (no match)": median_ms(lambda: customers({"search": "zzzz"}), READS),
        }

        # Chat-session reads: live (not due) vs overdue (the read itself expires it).
        customer_ids = [str(r["id"]) for r in ctx.db.rows("SELECT id FROM customers LIMIT :n", n=2 * READS)]
        with ctx.db.transaction() as tx:
            mitra = str(
                tx.scalar("INSERT INTO mitras (phone_e164, display_name) VALUES ('+6281999999999', 'M') RETURNING id")
            )
            rows = tx.rows(
                "INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes, accepted_at,"
                " payment_deadline_at)"
                " SELECT c, CAST(:m AS uuid), 'pending_payment', 30, now(),"
                "        CASE WHEN ord <= :n THEN now() + interval '1 hour' ELSE now() - interval '1 second' END"
                " FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS t(c, ord) RETURNING id, customer_id,"
                " payment_deadline_at > now() AS live",
                m=mitra,
                n=READS,
                ids=customer_ids,
            )
            tx.commit()
        live = [(str(r["id"]), token("customer", str(r["customer_id"]))) for r in rows if r["live"]]
        due = [(str(r["id"]), token("customer", str(r["customer_id"]))) for r in rows if not r["live"]]

        def read(pairs: list[tuple[str, dict[str, str]]], expect: str) -> Callable[[], None]:
            it = iter(pairs)

            def run() -> None:
                sid, headers = next(it)
                resp = app["pairing_get"].get(f"/api/client/chat-sessions/{sid}", headers=headers)
                assert resp.status_code == 200 and resp.json["status"] == expect, resp.json

            return run

        results["GET session, not due"] = median_ms(read(live, "pending_payment"), len(live))
        results["GET session, overdue (settles)"] = median_ms(read(due, "expired"), len(due))
        ctx.close()
    print(f"{CUSTOMERS} customers, medians of {READS} requests")
    for name, ms in results.items():
        print(f"  {name:34s} {ms:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
