"""The available/capacity rule has one Python, one SQL and one Lua definition; they agree.

For generated mitras (online, active, used, a maximum override or none) and a default
maximum (or no app_config row at all), the Python rule (`truth.is_available`), the SQL the
Postgres fallbacks, the seed and the accept's capacity check run, and the Lua prelude every
mirror script runs (`_available_rule.lua`, through EVAL on Valkey) give the same answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import valkey as valkey_adapter
from shared.availability import mirror, truth
from shared.context import AppContext
from shared.db import Tx
from shared.pairing import store

PROBE = Path(__file__).with_name("available_rule_probe.lua")


@dataclass(frozen=True)
class Case:
    online: bool
    active: bool
    used: int
    closed: int  # sessions that no longer hold capacity (ended)
    override: int | None


cases = st.builds(
    Case,
    online=st.booleans(),
    active=st.booleans(),
    used=st.integers(0, 3),
    closed=st.integers(0, 1),
    override=st.one_of(st.none(), st.integers(0, 3)),
)
defaults = st.one_of(st.none(), st.integers(0, 3))  # None: no app_config row


def _write_postgres(tx: Tx, mitras: list[Case], default: int | None) -> list[str]:
    tx.execute("DELETE FROM app_config WHERE key = 'mitra_max_concurrent_sessions'")
    if default is not None:
        tx.execute(
            "INSERT INTO app_config (key, value) VALUES ('mitra_max_concurrent_sessions', to_jsonb(CAST(:v AS int)))",
            v=default,
        )
    ids = []
    for case in mitras:
        mitra_id = str(
            tx.scalar(
                "INSERT INTO mitras (phone_e164, display_name, is_online, is_active, max_concurrent_sessions,"
                " last_heartbeat_at) VALUES (:phone, 'Mitra', :online, :active, :mx, now()) RETURNING id",
                phone=f"+62813{uuid.uuid4().int % 10**8:08d}",
                online=case.online,
                active=case.active,
                mx=case.override,
            )
        )
        statuses = ["active", "pending_payment"] * case.used
        for status in [*statuses[: case.used], *["ended"] * case.closed]:
            customer = tx.scalar("INSERT INTO customers DEFAULT VALUES RETURNING id")
            tx.execute(
                "INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes)"
                " VALUES (:c, CAST(:m AS uuid), :s, 30)",
                c=customer,
                m=mitra_id,
                s=status,
            )
        ids.append(mitra_id)
    return ids


def _write_valkey(ctx: AppContext, ids: list[str], mitras: list[Case], default: int | None) -> None:
    k = ctx.keys
    pipe = ctx.valkey.pipeline(transaction=False)
    pipe.delete(k.online, k.deactivated, k.used, k.max, k.config)
    for mitra_id, case in zip(ids, mitras, strict=True):
        if case.online:
            pipe.sadd(k.online, mitra_id)
        if not case.active:
            pipe.sadd(k.deactivated, mitra_id)
        if case.used:
            pipe.hset(k.used, mitra_id, case.used)
        if case.override is not None:
            pipe.hset(k.max, mitra_id, case.override)
    if default is not None:
        pipe.hset(k.config, "default_max", default)
    pipe.execute()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mitras=st.lists(cases, min_size=1, max_size=6), default=defaults)
def test_python_sql_and_lua_decide_availability_and_capacity_alike(
    isolated_ctx: AppContext, mitras: list[Case], default: int | None
) -> None:
    ctx = isolated_ctx
    effective_default = truth.UNSET_DEFAULT_MAX if default is None else default
    python = [truth.is_available(c.online, c.active, c.used, c.override, effective_default) for c in mitras]
    python_max = [truth.effective_max(c.override, effective_default) for c in mitras]

    with ctx.db.transaction() as tx:  # rolled back: the rows live for this example only
        ids = _write_postgres(tx, mitras, default)
        cutoff = truth.cutoff_for(ctx.now(), 60)
        seeded = {
            mitra_id
            for s in truth.seed_slices(tx, 1000)
            for mitra_id, flag in zip(s.online_ids.split(","), s.available_flags, strict=False)
            if flag == "1"
        }
        found = set(truth.find_available(tx, cutoff, 100, []))
        counted = truth.count_available(tx, cutoff)
        dashboard = truth.dashboard_counts(tx, cutoff)["available"]
        capacity = [store.lock_mitra_capacity(tx, mitra_id) for mitra_id in ids]
        truths = {t.id: t for t in truth.mitras_by_id(tx, ids)}
        sql_default = truth.default_max(tx)

    assert sql_default == effective_default
    assert [truths[i].used for i in ids] == [c.used for c in mitras]
    assert [i in seeded for i in ids] == python
    assert [i in found for i in ids] == python
    assert counted == dashboard == sum(python)
    assert [cap["max"] for cap in capacity if cap] == python_max
    # The accept's check (active, used < max) is the rule without the online condition.
    assert [bool(cap and cap["is_active"] and cap["has_room"]) for cap in capacity] == [
        truth.is_available(True, c.active, c.used, c.override, effective_default) for c in mitras
    ]

    _write_valkey(ctx, ids, mitras, default)
    probe = valkey_adapter.load_script(ctx.valkey, PROBE, prelude=mirror._HERE / "_available_rule.lua")
    lua = probe(keys=mirror._mutation_keys(ctx), args=ids)
    assert [bool(int(a)) for a, _ in lua] == python
    assert [int(m) for _, m in lua] == python_max
