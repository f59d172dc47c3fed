"""The mirror's sweep scripts stay short at any size: the auto-offline's read and removal and the
seed's fill run in bounded pages and chunks, and paging changes neither what they do nor what a
concurrent write leaves behind."""

from __future__ import annotations

from typing import Any

import pytest

from shared import availability
from shared.auth.principal import Principal
from shared.availability import mirror
from shared.context import AppContext
from shared.sweeps import jobs
from tests.helpers import FakeClock
from tests.mirror_state import actual, expected, new_mitra

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
    monkeypatch.setattr(mirror, "STALE_PAGE", 4)
    monkeypatch.setattr(mirror, "OFFLINE_CHUNK", 3)
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
    monkeypatch.setattr(mirror, "STALE_PAGE", 3)
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
    monkeypatch.setattr(mirror, "PINGS_PAGE", 2)
    pages = _calls(monkeypatch, ctx, "pings_since")

    chunks = list(mirror.ping_chunks(ctx, since, chunk=5))

    assert [int(a[-1]) for a in pages] == [2, 2, 2, 2]  # 2, 2 | 2, 1
    assert [c.count for c in chunks] == [4, 3]
    assert ",".join(c.ids_csv for c in chunks) == one_read[0].ids_csv
    assert ",".join(c.ms_csv for c in chunks) == one_read[0].ms_csv
    assert chunks[-1].highest_ms == one_read[0].highest_ms == ctx.now_ms()
