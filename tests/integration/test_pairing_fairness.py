"""Fair blasts: the rotating cursor spreads offers over every available mitra."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from shared import availability, pairing
from shared.auth.principal import Principal
from shared.context import AppContext
from tests.support.mirror_state import new_mitra


def test_a_hundred_blasts_over_200_mitras_offer_nobody_more_than_3x_the_mean(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    ctx.settings = replace(ctx.settings, pairing_blast_size=25)
    mitras = [new_mitra(ctx) for _ in range(200)]
    for mitra_id in mitras:
        availability.set_online(ctx, mitra_id, "test")
    availability.seed_from_postgres(ctx)
    with ctx.db.transaction() as tx:
        customers = [
            str(r["id"])
            for r in tx.rows(
                "INSERT INTO customers (display_name) SELECT 'c' FROM generate_series(1, 100) RETURNING id"
            )
        ]
        tx.commit()

    for customer_id in customers:
        session = pairing.request_session(ctx, Principal("customer", customer_id, "sid"), None)
        assert session["offered_count"] == 25

    offers = Counter(
        {
            str(r["mitra_id"]): int(r["n"])
            for r in ctx.db.rows("SELECT mitra_id, count(*) AS n FROM pairing_offers GROUP BY 1")
        }
    )
    mean = sum(offers.values()) / len(mitras)
    assert sum(offers.values()) == 2500 and mean == 12.5
    assert max(offers.values()) <= 3 * mean
    assert set(offers) == set(mitras)  # every available mitra got its turn
    assert max(offers.values()) - min(offers.values()) <= 1  # the cursor hands out consecutive slices
