"""The mirror's sweep scripts stay short at any size: the auto-offline's read and removal and the
seed's fill run in bounded pages and chunks, and paging changes neither what they do nor what a
concurrent write leaves behind."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from shared import availability
from shared.auth.principal import Principal
from shared.availability import mirror, seed, truth
from shared.context import AppContext
from shared.db import Tx
from shared.sweeps import jobs
from tests.support.helpers import FakeClock
from tests.support.mirror_state import actual, expected, new_mitra, open_session, scores_consistent

NO_SESSION = "00000000-0000-0000-0000-000000000000"


def _online(ctx: AppContext, count: int) -> list[str]:
    ids = [new_mitra(ctx) for _ in range(count)]
    for mid in ids:
        availability.set_online(ctx, mid, "test")
    return ids


def _calls(monkeypatch: Any, ctx: AppContext, name: str, after: Any = None) -> list[list[Any]]:
    """Record the args of every call of the mirror script `name` (and run `after(reply)` after each)."""
    scripts = dict(mirror.scripts(ctx))
    script = scripts[name]
    seen: list[list[Any]] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        seen.append(list(kwargs["args"]))
        reply = script(*args, **kwargs)
        if after:
            after(reply)
        return reply

    scripts[name] = recorded
    monkeypatch.setattr(mirror, "scripts", lambda _ctx: scripts)
    return seen


def _stale_scores(ctx: AppContext, ids: list[str], scores: list[int]) -> None:
    k = ctx.keys
    ctx.valkey.zadd(k.heartbeat, dict(zip(ids, scores, strict=True)))
    ctx.valkey.zadd(k.available, dict(zip(ids, scores, strict=True)), xx=True)


def test_the_stale_scan_in_short_pages_reads_what_one_long_read_does(isolated_ctx: AppContext) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = _online(ctx, 11)
    old = availability.cutoff_ms(ctx) - 60_000
    # Runs of equal scores across the page boundaries (pages of 3: members 3-4 and 5-7 tie).
    offsets = [0, 1, 2, 3, 3, 4, 4, 4, 5, 6, 7]
    _stale_scores(ctx, ids, [old + i for i in offsets])

    whole = availability.stale_scan(ctx, availability.cutoff_ms(ctx), 10_000, page=10_000)
    assert whole is not None and whole.count == 11 and set(whole.ids_csv.split(",")) == set(ids)
    for limit in (11, 7, 3):
        paged = availability.stale_scan(ctx, availability.cutoff_ms(ctx), limit, page=3)
        one = availability.stale_scan(ctx, availability.cutoff_ms(ctx), limit, page=10_000)
        assert paged == one and one is not None and one.count == limit


def test_each_stale_scan_and_removal_script_takes_at_most_its_page(isolated_ctx: AppContext, monkeypatch: Any) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = _online(ctx, 10)
    _stale_scores(ctx, ids, [availability.cutoff_ms(ctx) - 1000] * 10)
    monkeypatch.setattr(mirror, "STALE_PAGE", 4, raising=False)
    monkeypatch.setattr(mirror, "OFFLINE_CHUNK", 3, raising=False)
    scans = _calls(monkeypatch, ctx, "stale_scan")
    removals = _calls(monkeypatch, ctx, "remove_offlined")

    result = jobs.auto_offline_pass(ctx)

    assert result == {"offlined": 10, "stale": 10}
    assert [int(a[-1]) for a in scans] == [4, 4, 4]  # pages of 4: 4, 4, then 2 of the 4 asked
    assert [len(a[0].split(",")) for a in removals] == [3, 3, 3, 1]
    assert actual(ctx) == expected(ctx) and actual(ctx)["online"] == set()


def test_a_mitra_that_pings_between_two_pages_stays_online_and_the_rest_go(
    isolated_ctx: AppContext, clock: FakeClock, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = _online(ctx, 9)
    _stale_scores(ctx, ids, [availability.cutoff_ms(ctx) - 1000 + i for i in range(9)])
    late = ids[7]  # read by the third page; it pings after the first
    monkeypatch.setattr(mirror, "STALE_PAGE", 3, raising=False)
    pinged: list[bool] = []

    def ping_once(_reply: Any) -> None:
        if not pinged:
            pinged.append(True)
            availability.heartbeat(ctx, Principal("mitra", late, NO_SESSION))

    _calls(monkeypatch, ctx, "stale_scan", after=ping_once)

    result = jobs.auto_offline_pass(ctx)

    assert result == {"offlined": 8, "stale": 8}
    state = actual(ctx)
    assert state["online"] == {late} and state["available"] == {late}
    assert state == expected(ctx)


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_removing_offlined_mitras_in_chunks_removes_exactly_them(isolated_ctx: AppContext, chunk: int) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = _online(ctx, 5)
    gone = ids[:3]
    assert availability.remove_offlined(ctx, ",".join(gone), chunk) == 3
    state = actual(ctx)
    assert state["online"] == state["available"] == state["ring"] == state["heartbeat_members"] == set(ids[3:])


def test_the_heartbeat_mirror_reads_short_pages_and_writes_whole_chunks(
    isolated_ctx: AppContext, clock: FakeClock, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = _online(ctx, 7)
    clock.advance(5)
    for mid in ids:
        availability.heartbeat(ctx, Principal("mitra", mid, NO_SESSION))
    since = ctx.now_ms() - 1
    one_read = list(mirror.ping_chunks(ctx, since, chunk=10_000, page=10_000))
    monkeypatch.setattr(mirror, "PINGS_PAGE", 2, raising=False)
    pages = _calls(monkeypatch, ctx, "pings_since")

    chunks = list(mirror.ping_chunks(ctx, since, chunk=5))

    assert [int(a[-1]) for a in pages] == [2, 2, 2, 2]  # 2, 2 | 2, 1
    assert [c.count for c in chunks] == [4, 3]
    assert ",".join(c.ids_csv for c in chunks) == one_read[0].ids_csv
    assert ",".join(c.ms_csv for c in chunks) == one_read[0].ms_csv
    assert chunks[-1].highest_ms == one_read[0].highest_ms == ctx.now_ms()


def _varied_mitras(ctx: AppContext) -> list[str]:
    """Mitras in every state the seed mirrors: online, capped, busy, deactivated, offline with a session."""
    ids = _online(ctx, 6)
    capped = new_mitra(ctx, max_sessions=2)
    availability.set_online(ctx, capped, "test")
    open_session(ctx, ids[0])
    open_session(ctx, capped)
    gone = new_mitra(ctx)
    availability.deactivate(ctx, gone, "test")
    offline_busy = new_mitra(ctx)
    open_session(ctx, offline_busy)
    return [*ids, capped, gone, offline_busy, new_mitra(ctx)]


def test_a_seed_read_in_pages_of_one_mitra_builds_what_a_seed_in_one_page_builds(
    isolated_ctx: AppContext, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    _varied_mitras(ctx)
    ctx.valkey.flushall()
    one_page = availability.seed_from_postgres(ctx)
    built = actual(ctx)
    scores = ctx.valkey.zrange(ctx.keys.heartbeat, 0, -1, withscores=True)
    ctx.valkey.flushall()
    monkeypatch.setattr(mirror, "SEED_CHUNK", 1)

    paged = availability.seed_from_postgres(ctx)

    assert (paged.ran, paged.mitras, paged.online) == (one_page.ran, one_page.mitras, one_page.online) == (True, 9, 7)
    assert actual(ctx) == built == expected(ctx)
    assert ctx.valkey.zrange(ctx.keys.heartbeat, 0, -1, withscores=True) == scores


def test_the_seed_writes_valkey_while_it_still_reads_postgres(isolated_ctx: AppContext, monkeypatch: Any) -> None:
    ctx = isolated_ctx
    _online(ctx, 5)
    monkeypatch.setattr(mirror, "SEED_CHUNK", 1)
    events: list[str] = []
    for method in ("one", "rows"):
        real = getattr(Tx, method)

        def reading(self: Tx, sql: str, _real: Any = real, **params: Any) -> Any:
            if "string_agg" in sql:
                events.append("read")
            return _real(self, sql, **params)

        monkeypatch.setattr(Tx, method, reading)
    _calls(monkeypatch, ctx, "seed_fill", after=lambda _reply: events.append("fill"))

    assert availability.seed_from_postgres(ctx).ran

    last_read = len(events) - 1 - events[::-1].index("read")
    assert events.count("read") >= 5 and events.index("fill") < last_read  # a statement per page
    assert actual(ctx) == expected(ctx)


def test_pings_during_the_fill_reach_the_temp_keys_before_the_swap_which_applies_only_the_last_page(
    isolated_ctx: AppContext, clock: FakeClock, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = _online(ctx, 6)
    clock.advance(30)
    monkeypatch.setattr(mirror, "SEED_CHUNK", 1)
    monkeypatch.setattr(seed, "CATCH_UP_PAGE", 2, raising=False)
    left = list(ids)

    def ping_two(_reply: Any) -> None:  # every fill call, two mitras ping (a second later each)
        for _ in range(2):
            if left:
                clock.advance(1)
                availability.heartbeat(ctx, Principal("mitra", left.pop(), NO_SESSION))

    _calls(monkeypatch, ctx, "seed_fill", after=ping_two)
    catch_ups = _calls(monkeypatch, ctx, "seed_catch_up")
    swaps: list[int] = []
    scripts = mirror.scripts(ctx)
    swap = scripts["swap_seed"]

    def counting_swap(*args: Any, **kwargs: Any) -> Any:  # pings the swap itself still has to apply
        swaps.append(int(ctx.valkey.zcount(ctx.keys.heartbeat, f"({kwargs['args'][2]}", "+inf")))
        return swap(*args, **kwargs)

    scripts["swap_seed"] = counting_swap
    pinged = dict(ctx.valkey.zrange(ctx.keys.heartbeat, 0, -1, withscores=True))  # filled in by the pings

    assert availability.seed_from_postgres(ctx).ran

    assert not left and len(catch_ups) >= 3 and swaps[0] <= 2
    after = dict(ctx.valkey.zrange(ctx.keys.heartbeat, 0, -1, withscores=True))
    assert all(after[m] > pinged[m] for m in ids)  # every ping of the fill kept, none moved back
    assert dict(ctx.valkey.zrange(ctx.keys.available, 0, -1, withscores=True)) == after
    assert actual(ctx) == expected(ctx)


def test_a_ping_scored_by_a_clock_behind_that_lands_just_before_the_swap_survives_it(
    isolated_ctx: AppContext, clock: FakeClock, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    a, _ = _online(ctx, 2)
    clock.advance(30)
    scripts = dict(mirror.scripts(ctx))
    swap = scripts["swap_seed"]
    late: list[float] = []

    def ping_then_swap(*args: Any, **kwargs: Any) -> Any:
        # An instance whose clock is half a second behind: below what the swap applies itself.
        late.append(float(kwargs["args"][2]) - 500)
        ctx.valkey.zadd(ctx.keys.heartbeat, {a: late[0]}, gt=True)
        ctx.valkey.zadd(ctx.keys.available, {a: late[0]}, gt=True)
        return swap(*args, **kwargs)

    scripts["swap_seed"] = ping_then_swap
    monkeypatch.setattr(mirror, "scripts", lambda _ctx: scripts)

    assert availability.seed_from_postgres(ctx).ran

    assert ctx.valkey.zscore(ctx.keys.heartbeat, a) == ctx.valkey.zscore(ctx.keys.available, a) == late[0]
    assert actual(ctx) == expected(ctx)


def test_a_first_heartbeat_mirror_pass_into_an_empty_table_leaves_the_planner_its_size(
    isolated_ctx: AppContext, clock: FakeClock
) -> None:
    ctx = isolated_ctx
    availability.ensure_seeded(ctx)
    ids = _online(ctx, 30)
    with ctx.db.transaction() as tx:  # known empty, as autovacuum leaves a new table
        tx.script("ANALYZE mitra_pings")
        tx.commit()
    clock.advance(5)
    for mid in ids:
        availability.heartbeat(ctx, Principal("mitra", mid, NO_SESSION))

    assert jobs.heartbeat_mirror_pass(ctx) == {"mirrored": 30, "read": 30}

    # Planned as empty, the next statements would read the whole table once per id.
    assert ctx.db.scalar("SELECT reltuples FROM pg_class WHERE oid = CAST('mitra_pings' AS regclass)") == 30


DEFAULT_MAX = "mitra_max_concurrent_sessions"


def _many_mitras(ctx: AppContext, count: int) -> None:
    """`count` mitras in bulk, in every state the default max touches: about two in three online
    (some deactivated ones offline), overrides of 0, 1 and 3 or none, and 0, 1 or 2 sessions."""
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO mitras (phone_e164, display_name, is_online, is_active, max_concurrent_sessions,"
            " last_heartbeat_at)"
            " SELECT '+62899' || lpad(CAST(g AS text), 8, '0'), 'm' || g, g % 3 <> 0 AND g % 11 <> 0, g % 11 <> 0,"
            " CASE g % 7 WHEN 0 THEN 0 WHEN 1 THEN 1 WHEN 2 THEN 3 END,"
            " CASE WHEN g % 3 <> 0 THEN CAST(:now AS timestamptz) END"
            " FROM generate_series(1, :n) AS g",
            n=count,
            now=ctx.now(),
        )
        # Sessions: one for a mitra numbered 3 mod 5, two for 4 mod 5, each of its own customer.
        tx.execute(
            "INSERT INTO customers (display_name) SELECT 'c' FROM mitras CROSS JOIN generate_series(1, 2) AS s"
            " WHERE CAST(substr(display_name, 2) AS int) % 5 >= s + 2"
        )
        tx.execute(
            "INSERT INTO chat_sessions (customer_id, mitra_id, status, duration_minutes)"
            " SELECT c.id, t.mitra_id, 'active', 30 FROM"
            " (SELECT id AS mitra_id, row_number() OVER (ORDER BY id, s) AS rn FROM mitras"
            "  CROSS JOIN generate_series(1, 2) AS s WHERE CAST(substr(display_name, 2) AS int) % 5 >= s + 2) AS t"
            " JOIN (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM customers) AS c USING (rn)"
        )
        tx.commit()


def test_a_default_max_change_in_pages_derives_what_one_script_does(isolated_ctx: AppContext, monkeypatch: Any) -> None:
    ctx = isolated_ctx
    _many_mitras(ctx, 3000)
    online = availability.seed_from_postgres(ctx).online
    assert online == len(expected(ctx)["online"]) > 1500
    replies: list[Any] = []
    calls = _calls(monkeypatch, ctx, "set_default_max", after=replies.append)
    monkeypatch.setattr(mirror, "DEFAULT_MAX_PAGE", 10_000_000, raising=False)
    availability.set_app_config(ctx, DEFAULT_MAX, 2, "test")
    one_script = actual(ctx)
    assert len(calls) == 1 and one_script == expected(ctx) and one_script["default_max"] == 2
    availability.set_app_config(ctx, DEFAULT_MAX, 1, "test")
    assert actual(ctx) == expected(ctx) != one_script
    monkeypatch.setattr(mirror, "DEFAULT_MAX_PAGE", 100, raising=False)
    calls.clear()
    replies.clear()

    availability.set_app_config(ctx, DEFAULT_MAX, 2, "test")

    assert len(calls) >= online // 100
    assert actual(ctx) == one_script == expected(ctx)
    assert scores_consistent(ctx)
    # SSCAN's COUNT is a hint (a few members more now and then): about 100 a call, all of them in the end.
    derived = [int(reply[1]) for reply in replies]
    assert all(int(a[2]) == 100 for a in calls) and max(derived) <= 150 and sum(derived) >= online
    assert [a[0] for a in calls] == [2] + [""] * (len(calls) - 1)  # the default goes with the first page only


def _hold(ctx: AppContext, mitra_id: str, sessions: int) -> None:
    """End the mitra's sessions, open `sessions` new ones, and mirror its used count."""
    with ctx.db.transaction() as tx:
        tx.execute("UPDATE chat_sessions SET status = 'ended' WHERE mitra_id = CAST(:m AS uuid)", m=mitra_id)
        tx.commit()
    for _ in range(sessions):
        open_session(ctx, mitra_id)
    availability.recompute_capacity(ctx, mitra_id)


def test_writes_between_two_pages_of_a_default_max_change_end_as_postgres_says(
    isolated_ctx: AppContext, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    _many_mitras(ctx, 400)  # past 128 members the online set is a hash table, which SSCAN pages
    availability.seed_from_postgres(ctx)
    with ctx.db.transaction() as tx:
        plain = {r.id for r in truth.mirrored_mitras(tx) if r.online and r.active and r.max_override is None}
    monkeypatch.setattr(mirror, "DEFAULT_MAX_PAGE", 20, raising=False)
    changed: dict[str, str] = {}

    def write_once(_reply: Any) -> None:
        if changed:
            return
        first = set(ctx.valkey.sscan(ctx.keys.online, 0, count=20)[1])  # the page just derived
        done, rest = sorted(first & plain), sorted(plain - first)
        # Derived already: its used count moves to 1 (available under the new default only) or 2 (full).
        changed["done_one"], changed["done_full"] = done[:2]
        # Not derived yet: the same two writes, an override of 1, an offline, and a new mitra online.
        changed["rest_one"], changed["rest_full"], changed["rest_override"], changed["rest_offline"] = rest[:4]
        for key, held in (("done_one", 1), ("done_full", 2), ("rest_one", 1), ("rest_full", 2), ("rest_override", 1)):
            _hold(ctx, changed[key], held)
        availability.edit_mitra(ctx, changed["rest_override"], {"max_concurrent_sessions": 1}, "test")
        availability.set_offline(ctx, changed["rest_offline"], "test")
        changed["new"] = new_mitra(ctx)
        availability.set_online(ctx, changed["new"], "test")

    calls = _calls(monkeypatch, ctx, "set_default_max", after=write_once)

    availability.set_app_config(ctx, DEFAULT_MAX, 2, "test")

    assert changed and len(calls) > 1  # the writes landed between two pages
    state = actual(ctx)
    assert state == expected(ctx)
    assert {changed[k] for k in ("done_one", "rest_one", "new")} <= state["available"]
    assert not {changed[k] for k in ("done_full", "rest_full", "rest_override", "rest_offline")} & state["available"]
    assert changed["rest_offline"] not in state["online"]


def test_a_valkey_error_between_two_pages_is_reported_and_the_next_reseed_repairs_it(
    isolated_ctx: AppContext, monkeypatch: Any, caplog: Any
) -> None:
    ctx = isolated_ctx
    _many_mitras(ctx, 400)
    availability.seed_from_postgres(ctx)
    monkeypatch.setattr(mirror, "DEFAULT_MAX_PAGE", 20, raising=False)
    scripts = dict(mirror.scripts(ctx))
    script = scripts["set_default_max"]
    calls: list[int] = []

    def failing_second(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise redis.ConnectionError("connection lost")
        return script(*args, **kwargs)

    scripts["set_default_max"] = failing_second
    monkeypatch.setattr(mirror, "scripts", lambda _ctx: scripts)
    with ctx.db.transaction() as tx:  # the staff change commits first, then writes the mirror
        tx.execute("UPDATE app_config SET value = to_jsonb(2) WHERE key = :k", k=DEFAULT_MAX)
        tx.commit()

    with caplog.at_level(logging.WARNING, logger="shared.availability.mirror"):
        assert mirror.set_default_max(ctx, 2) is False

    assert len(calls) == 2 and "mirror default-max write failed" in caplog.text
    state, truth_now = actual(ctx), expected(ctx)
    assert state["default_max"] == 2 and state["available"] < truth_now["available"]  # the first page only
    assert availability.seed_from_postgres(ctx).ran
    assert actual(ctx) == expected(ctx) == truth_now


def test_a_default_max_change_during_a_seed_reaches_the_mirror_after_the_swap(
    isolated_ctx: AppContext, monkeypatch: Any
) -> None:
    ctx = isolated_ctx
    ids = _online(ctx, 12)
    for mid in ids:
        open_session(ctx, mid)
    monkeypatch.setattr(mirror, "SEED_CHUNK", 2)
    monkeypatch.setattr(mirror, "DEFAULT_MAX_PAGE", 3, raising=False)

    def change_once(_reply: Any) -> None:  # after the seed's snapshot read the old default
        if not ctx.valkey.hget(ctx.keys.config, "default_max"):
            availability.set_app_config(ctx, DEFAULT_MAX, 2, "test")

    _calls(monkeypatch, ctx, "seed_fill", after=change_once)
    pages = _calls(monkeypatch, ctx, "set_default_max")

    report = availability.seed_from_postgres(ctx)

    assert report.ran and report.resynced >= 1
    assert [a[0] for a in pages] == [2, 2]  # during the fill, and again after the swap (a page each: 12 online)
    assert actual(ctx) == expected(ctx) and actual(ctx)["available"] == set(ids)
