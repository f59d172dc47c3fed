"""The sweeps against real Postgres + Valkey, with an injected clock (no real waiting)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import redis

from shared import availability
from shared.auth.principal import Principal
from shared.availability import mirror, truth
from shared.context import AppContext
from shared.sweeps import jobs, runner
from tests.support.helpers import FakeClock, installed, on_both_topologies
from tests.support.mirror_state import actual, expected, new_mitra
from tests.support.tokens import mitra_token

STALE = 90  # MITRA_HEARTBEAT_STALE_SECONDS default


def go_online(ctx: AppContext, count: int) -> list[str]:
    ids = [new_mitra(ctx) for _ in range(count)]
    for mid in ids:
        availability.set_online(ctx, mid, "test")
    return ids


def ping(ctx: AppContext, mitra_id: str) -> None:
    _, sid = mitra_token(ctx, mitra_id)
    availability.heartbeat(ctx, Principal("mitra", mitra_id, sid))


def pg_online(ctx: AppContext) -> set[str]:
    return {str(r["id"]) for r in ctx.db.rows("SELECT id FROM mitras WHERE is_online")}


def status_logs(ctx: AppContext, event: str) -> list[str]:
    return [str(r["mitra_id"]) for r in ctx.db.rows("SELECT mitra_id FROM mitra_status_logs WHERE event = :e", e=event)]


@pytest.fixture
def seeded(mirror_ctx: AppContext) -> AppContext:
    """A seeded isolated context (on the cluster too for tests marked `on_both_topologies`)."""
    availability.seed_from_postgres(mirror_ctx)
    return mirror_ctx


@on_both_topologies
def test_a_mitra_whose_heartbeat_stops_is_offlined_and_one_that_pings_is_not(seeded, clock: FakeClock):
    silent, pinging = go_online(seeded, 2)
    clock.advance(60)
    ping(seeded, pinging)
    clock.advance(STALE - 60 + 1)  # silent: 91 s since its last ping; pinging: 31 s

    result = jobs.auto_offline_pass(seeded)

    assert result == {"offlined": 1, "stale": 1}
    assert pg_online(seeded) == {pinging}
    mirror = actual(seeded)
    assert silent not in mirror["online"] | mirror["heartbeat_members"] | mirror["available"]
    assert pinging in mirror["available"]
    assert status_logs(seeded, "auto_offline") == [silent]
    assert actual(seeded) == expected(seeded)


def test_heartbeats_inside_the_threshold_offline_nobody(seeded, clock: FakeClock):
    go_online(seeded, 3)
    clock.advance(STALE - 1)
    assert jobs.auto_offline_pass(seeded) == {"offlined": 0, "stale": 0}
    assert len(pg_online(seeded)) == 3


def test_valkey_stopped_during_auto_offline_changes_no_postgres_row(isolated_ctx, clock, own_valkey):
    with installed(AppContext(replace(isolated_ctx.settings, valkey_url=own_valkey.url), clock=clock)) as ctx:
        availability.seed_from_postgres(ctx)
        go_online(ctx, 3)
        clock.advance(STALE + 10)
        tables = "SELECT * FROM mitras ORDER BY id", "SELECT * FROM mitra_status_logs ORDER BY id"
        before = [ctx.db.rows(sql) for sql in tables]
        own_valkey.stop()

        result = jobs.auto_offline_pass(ctx)

        assert result["aborted"] == 1 and result["abort_reason"] == "valkey_error" and result["offlined"] == 0
        assert [ctx.db.rows(sql) for sql in tables] == before


def test_valkey_stopped_during_a_reseed_aborts_the_pass_instead_of_failing_it(isolated_ctx, clock, own_valkey):
    with installed(AppContext(replace(isolated_ctx.settings, valkey_url=own_valkey.url), clock=clock)) as ctx:
        go_online(ctx, 2)
        own_valkey.stop()

        result = jobs.reseed_pass(ctx)

        assert result["aborted"] == 1 and result["abort_reason"] == "valkey_error" and result["reseeded"] == 0


def test_an_unseeded_mirror_aborts_auto_offline_and_gets_reseeded(seeded, clock):
    go_online(seeded, 2)
    clock.advance(STALE + 10)
    seeded.valkey.flushall()
    result = jobs.auto_offline_pass(seeded)
    assert result["abort_reason"] == "mirror_not_seeded" and result["offlined"] == 0
    assert len(pg_online(seeded)) == 2
    assert availability.is_seeded(seeded)


@on_both_topologies
def test_breaker_offlines_nobody_when_too_many_look_stale_at_once(seeded, clock):
    ids = go_online(seeded, 24)
    clock.advance(STALE + 5)
    for mid in ids[:3]:  # 21 of 24 stale: above half and above the minimum of 20
        ping(seeded, mid)
    result = jobs.auto_offline_pass(seeded)
    assert result == {"offlined": 0, "stale": 21, "breaker_open": True}
    assert len(pg_online(seeded)) == 24
    assert status_logs(seeded, "auto_offline") == []


def test_below_the_breaker_minimum_stale_mitras_are_offlined_even_if_most_are_stale(seeded, clock):
    ids = go_online(seeded, 5)
    clock.advance(STALE + 5)
    ping(seeded, ids[0])
    assert jobs.auto_offline_pass(seeded) == {"offlined": 4, "stale": 4}
    assert pg_online(seeded) == {ids[0]}


def _invoke_concurrently(ctx: AppContext, name: str, times: int = 3) -> list[dict]:
    sweep = jobs.sweep(name, ctx.settings)
    results: list[dict] = []
    barrier = threading.Barrier(times)

    def run(i: int) -> None:
        barrier.wait()
        results.append(
            runner.invoke(ctx, sweep, schedule_time=f"2026-11-28T10:0{i}:00Z", budget_seconds=75, sleep=lambda s: None)
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_three_concurrent_auto_offline_invocations_end_as_one(seeded, clock):
    ids = go_online(seeded, 6)
    clock.advance(STALE + 5)
    for mid in ids[:3]:
        ping(seeded, mid)

    results = _invoke_concurrently(seeded, "auto-offline")

    assert sum(r.get("offlined", 0) for r in results) == 3
    assert sorted(status_logs(seeded, "auto_offline")) == sorted(ids[3:])  # one log row each, no duplicates
    assert pg_online(seeded) == set(ids[:3])
    assert actual(seeded) == expected(seeded)


def _statement_counter(ctx: AppContext) -> None:
    """Count statements writing pings (mitra_pings upserts, mitras updates) on the server."""
    with ctx.db.transaction() as tx:
        tx.script("""
            CREATE TABLE stmt_count (n integer NOT NULL);
            INSERT INTO stmt_count VALUES (0);
            CREATE FUNCTION count_stmt() RETURNS trigger LANGUAGE plpgsql AS
              $$ BEGIN UPDATE stmt_count SET n = n + 1; RETURN NULL; END $$;
            CREATE TRIGGER pings_insert_statements AFTER INSERT ON mitra_pings
              FOR EACH STATEMENT EXECUTE FUNCTION count_stmt();
            CREATE TRIGGER mitras_update_statements AFTER UPDATE ON mitras
              FOR EACH STATEMENT EXECUTE FUNCTION count_stmt();
        """)
        tx.commit()


@on_both_topologies
def test_heartbeat_mirror_writes_n_heartbeats_in_one_statement_and_a_rerun_is_a_no_op(seeded, clock):
    ids = go_online(seeded, 12)
    clock.advance(20)
    for mid in ids:
        ping(seeded, mid)
    pinged_at = clock()
    _statement_counter(seeded)

    result = jobs.heartbeat_mirror_pass(seeded)

    assert result == {"mirrored": 12, "read": 12}
    assert seeded.db.scalar("SELECT n FROM stmt_count") == 1
    with seeded.db.transaction() as tx:
        stamps = {row.id: row.last_heartbeat_at for row in truth.mitras_by_id(tx, ids)}
    assert all(stamps[mid] == pinged_at for mid in ids)

    assert jobs.heartbeat_mirror_pass(seeded) == {"mirrored": 0}
    assert seeded.db.scalar("SELECT n FROM stmt_count") == 1  # the re-run wrote nothing at all


def _chunks_of_two(ctx: AppContext, fail_after: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass reads pings two at a time; with `fail_after`, Valkey fails after that many chunks."""
    real = mirror.ping_chunks

    def chunks(ctx_: AppContext, since: int) -> Iterator[mirror.Pings]:
        for i, pings in enumerate(real(ctx_, since, chunk=2)):
            if fail_after is not None and i == fail_after:
                raise redis.ConnectionError("injected: Valkey lost between chunks")
            yield pings

    monkeypatch.setattr(availability, "ping_chunks", chunks)


def test_heartbeat_mirror_writes_chunk_by_chunk_and_a_valkey_loss_midway_writes_nothing(seeded, clock, monkeypatch):
    ids = go_online(seeded, 5)
    clock.advance(20)
    for mid in ids:
        ping(seeded, mid)
    watermark = availability.heartbeat_watermark(seeded)

    _chunks_of_two(seeded, fail_after=1, monkeypatch=monkeypatch)
    assert jobs.heartbeat_mirror_pass(seeded) == {"mirrored": 0, "aborted": 1, "abort_reason": "valkey_error"}
    assert seeded.db.scalar("SELECT count(*) FROM mitra_pings") == 0  # the first chunk was rolled back
    assert availability.heartbeat_watermark(seeded) == watermark

    _chunks_of_two(seeded, fail_after=None, monkeypatch=monkeypatch)
    assert jobs.heartbeat_mirror_pass(seeded) == {"mirrored": 5, "read": 5}  # three chunks, one transaction
    assert seeded.db.scalar("SELECT count(*) FROM mitra_pings WHERE at = :t", t=clock()) == 5
    assert jobs.heartbeat_mirror_pass(seeded) == {"mirrored": 0}


def test_heartbeat_mirror_never_moves_a_timestamp_backwards(seeded, clock):
    a, b = go_online(seeded, 2)
    clock.advance(10)
    ping(seeded, a)
    ping(seeded, b)
    later = clock() + timedelta(minutes=5)
    with seeded.db.transaction() as tx:  # Postgres already knows newer pings: a pass elsewhere, a fallback write
        tx.execute("INSERT INTO mitra_pings (mitra_id, at) VALUES (CAST(:m AS uuid), :t)", t=later, m=a)
        tx.execute("UPDATE mitras SET last_heartbeat_at = :t WHERE id = CAST(:m AS uuid)", t=later, m=b)
        tx.commit()
    jobs.heartbeat_mirror_pass(seeded)
    assert seeded.db.scalar("SELECT at FROM mitra_pings WHERE mitra_id = CAST(:m AS uuid)", m=a) == later
    with seeded.db.transaction() as tx:
        assert [r.last_heartbeat_at for r in truth.mitras_by_id(tx, [a, b])] == [later, later]


def test_three_concurrent_heartbeat_mirror_invocations_end_as_one(seeded, clock):
    ids = go_online(seeded, 5)
    clock.advance(15)
    for mid in ids:
        ping(seeded, mid)
    results = _invoke_concurrently(seeded, "heartbeat-mirror")
    assert sum(r.get("mirrored", 0) for r in results) == 5
    assert seeded.db.scalar("SELECT count(*) FROM mitra_pings WHERE at = :t", t=clock()) == 5


@on_both_topologies
def test_reseed_heals_injected_drift_back_to_equality(seeded, clock):
    ids = go_online(seeded, 8)
    rng = random.Random(7)
    v, k = seeded.valkey, seeded.keys
    v.srem(k.online, *rng.sample(ids, 3))  # removed
    v.sadd(k.online, "00000000-0000-0000-0000-00000000dead")  # added
    v.sadd(k.deactivated, ids[0])  # corrupted
    v.hset(k.used, ids[1], 7)
    v.zrem(k.available, ids[2])
    assert actual(seeded) != expected(seeded)

    result = jobs.reseed_pass(seeded)

    assert result["reseeded"] == 1 and result["drift"] > 0
    assert actual(seeded) == expected(seeded)
    assert jobs.reseed_pass(seeded)["drift"] == 0  # nothing left to heal


def test_three_concurrent_reseeds_end_in_the_same_state_as_one(seeded, clock):
    go_online(seeded, 4)
    seeded.valkey.sadd(seeded.keys.online, "00000000-0000-0000-0000-00000000beef")
    results = _invoke_concurrently(seeded, "availability-reseed")
    assert sum(r.get("reseeded", 0) for r in results) >= 1
    assert actual(seeded) == expected(seeded)


def test_three_concurrent_session_expiry_invocations_end_as_one(seeded, clock):
    from collections import Counter

    from shared import notify, pairing, push
    from tests.support.pairing_support import online_mitras

    online_mitras(seeded, 2)
    sessions = []
    for _ in range(4):
        with seeded.db.transaction() as tx:
            cid = str(tx.scalar("INSERT INTO customers (display_name) VALUES ('c') RETURNING id"))
            tx.execute(
                "INSERT INTO devices (user_type, user_id, fcm_token, platform)"
                " VALUES ('customer', CAST(:c AS uuid), :t, 'ios')",
                c=cid,
                t=f"tok-{cid}",
            )
            tx.commit()
        sessions.append(pairing.request_session(seeded, Principal("customer", cid, "sid"), 30)["id"])
    assert notify.drain(seeded)  # pushes are queued off the request path
    sent = push.provider(seeded).sent
    sent.clear()
    clock.advance(seeded.settings.pairing_timeout_seconds + 1)

    results = _invoke_concurrently(seeded, "session-expiry")

    assert sum(r.get("expired_searching", 0) for r in results) == 4
    statuses = {str(r["id"]): r["status"] for r in seeded.db.rows("SELECT id, status FROM chat_sessions")}
    assert all(statuses[s] == "expired" for s in sessions)
    expiry_events = Counter(
        str(r["session_id"])
        for r in seeded.db.rows("SELECT session_id FROM chat_session_events WHERE actor = 'system:session-expiry'")
    )
    assert expiry_events == Counter(dict.fromkeys(sessions, 1))  # one event per session, no duplicates
    assert notify.drain(seeded)
    pushed = Counter(token for tokens, _ in sent for token in tokens)
    assert sorted(pushed.values()) == [1, 1, 1, 1]  # one push per customer


def test_a_locked_auto_offline_pass_needs_one_database_connection(seeded, clock: FakeClock):
    _silent, pinging = go_online(seeded, 2)
    clock.advance(60)
    ping(seeded, pinging)
    clock.advance(STALE - 60 + 1)
    one = replace(seeded.settings, db_pool_size=1, db_pool_timeout_seconds=1)
    with installed(AppContext(one, clock=clock)) as ctx:  # a second checkout would wait, then fail
        result = runner.run_locked_pass(ctx, jobs.sweep("auto-offline", ctx.settings))
        assert result == {"offlined": 1, "stale": 1}
        assert pg_online(ctx) == {pinging}
        assert actual(ctx) == expected(ctx)
