"""`make cost`: what 1k, 10k and 100k online mitras cost a month, from measured per-request cost.

One run measures, for each hot function through its real entry point on embedded servers, the
CPU-seconds and the wall time of one request, and the rows and bytes Postgres gains per chat.
The model multiplies them by a stated usage profile and Google's published prices, under both
Cloud Run billing modes, and picks the cheaper mode per function (the manifest's `billing`).
It writes docs/cost.md and docs/cost.png, with the rows and bytes each table gains a day.
Run: `.venv/bin/python -m bench.cost`.

Prices, as published on the pages below on 2026-12-03 (Tier 1 regions, e.g. asia-southeast2
is Tier 2 and costs more; the ratios between modes hold):
- Cloud Run (https://cloud.google.com/run/pricing): request-based billing $0.000024 per
  vCPU-second, $0.0000025 per GiB-second and $0.40 per million requests; instance-based
  billing $0.000018 per vCPU-second and $0.000002 per GiB-second, no request fee. Free tiers
  are left out (they are per billing account, not per service).
- Cloud SQL Enterprise (https://cloud.google.com/sql/pricing): $0.0413 per vCPU-hour and
  $0.007 per GB-hour (us-central1).
- Memorystore for Valkey (https://cloud.google.com/memorystore/docs/valkey/pricing): priced
  per node-hour by node type; the model gives the node count and type, and leaves the price
  to the page (not in the totals).
- SMS: the OTP provider's price per message is the operator's contract (`SMS_PRICE_USD`).
"""

from __future__ import annotations

import math
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import active_sessions
from shared import manifest

REPO = Path(__file__).resolve().parent.parent
MONTH_SECONDS = 730 * 3600
SIZES = (1_000, 10_000, 100_000)
REPEAT = 200

# ---- prices (see the module docstring for the pages and the date) --------------------------
REQUEST_BASED = {"vcpu_s": 0.000024, "gib_s": 0.0000025, "per_request": 0.40 / 1e6}
INSTANCE_BASED = {"vcpu_s": 0.000018, "gib_s": 0.000002, "per_request": 0.0}
CLOUD_SQL = {"vcpu_h": 0.0413, "gb_h": 0.007}
SMS_PRICE_USD = 0.02  # an assumption per OTP SMS; replace with the provider's contract price

# ---- the usage profile, per online mitra ----------------------------------------------------
PING_SECONDS = 30  # the apps' heartbeat interval
CHATS_PER_MITRA_HOUR = 1.0  # chats a mitra serves per online hour
MESSAGES_PER_CHAT = 20  # both sides together
CHAT_MINUTES = 10
POLL_SECONDS = 25  # a receive long poll answers at the latest after this
CUSTOMERS_PER_MITRA = 2.0  # customers with the app open per online mitra
BEACON_SECONDS = 30  # how often an open customer app reads the beacon
REFRESH_SECONDS = 3600  # access tokens live an hour
OTP_PER_CHAT = 0.05  # new sign-ins by phone per chat
TARGET_CPU = 0.6  # Cloud Run scales out around 60 % CPU utilisation
BILLING_GRANULE_SECONDS = 0.1  # request-based billing rounds up to 100 ms


@dataclass(frozen=True)
class Measured:
    """One request of one function: CPU-seconds and wall seconds, medians over REPEAT calls."""

    function: str
    cpu_s: float
    wall_s: float


def _measure(name: str, call: Callable[[], Any]) -> Measured:
    cpu, wall = [], []
    for _ in range(REPEAT):
        c0, w0 = time.process_time(), time.perf_counter()
        resp = call()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert resp.status_code < 300, (name, resp.status_code, resp.get_data(as_text=True)[:200])
    return Measured(name, statistics.median(cpu), statistics.median(wall))


def measure() -> tuple[list[Measured], dict[str, float]]:
    """Per-request cost of each hot function, and Postgres bytes gained per chat message."""
    from infra import embedded, gateway, migrate

    with embedded.services() as env:
        os.environ.update(env)
        os.environ.setdefault("AUTH_JWT_SECRET", "bench-secret-" + uuid.uuid4().hex * 2)
        os.environ.setdefault("OTP_HMAC_SECRET", "bench-otp-" + uuid.uuid4().hex * 2)
        os.environ.setdefault("VALKEY_PREFIX", f"bench{uuid.uuid4().hex[:6]}:")
        from shared import availability, context

        ctx = context.init()
        migrate.migrate(ctx.db)
        with ctx.db.transaction() as tx:  # the bench sends more than a person types
            tx.execute("UPDATE app_config SET value = '100000' WHERE key = 'chat_max_messages_per_minute'")
            tx.commit()
        availability.ensure_seeded(ctx)
        [one] = active_sessions(ctx, 1)
        session, customer, mitra = one.session, one.customer, one.mitra
        mitra_id = ctx.db.scalar("SELECT mitra_id FROM chat_sessions WHERE id = CAST(:s AS uuid)", s=session)
        availability.set_online(ctx, str(mitra_id), "bench")
        apps: dict[str, Any] = {}

        def client(entry_point: str) -> Any:
            if entry_point not in apps:
                apps[entry_point] = gateway.build_app(manifest.load().by_entry_point(entry_point))
            return apps[entry_point].test_client()  # type: ignore[attr-defined]

        refresh_token = [client("auth_anonymous").post("/api/shared/auth/anonymous").json["refresh_token"]]

        def refresh() -> Any:
            resp = client("auth_refresh").post("/api/shared/auth/refresh", json={"refresh_token": refresh_token[0]})
            refresh_token[0] = resp.json["refresh_token"]
            return resp

        messages = f"/api/client/chat-sessions/{session}/messages"
        calls = {
            "mitra-status-heartbeat": lambda: client("mitra_status_heartbeat").post(
                "/api/mitra/status/heartbeat", headers=mitra
            ),
            "pairing-availability": lambda: client("pairing_availability").get(
                "/api/client/availability", headers=customer
            ),
            "chat-client-send": lambda: client("chat_client_send").post(
                messages, headers=customer, json={"client_message_id": str(uuid.uuid4()), "body": "halo, apa kabar?"}
            ),
            "chat-client-messages": lambda: client("chat_client_messages").get(
                messages, headers=customer, query_string={"wait": 0}
            ),
            "auth-refresh": refresh,
        }
        measured = []
        growth: dict[str, dict[str, tuple[float, float]]] = {}
        for name, call in calls.items():
            before = _tables(ctx)
            measured.append(_measure(name, call))
            after = _tables(ctx)
            growth[name] = {
                table: ((after[table][0] - rows) / REPEAT, (after[table][1] - size) / REPEAT)
                for table, (rows, size) in before.items()
                if after[table][0] != rows
            }
        ctx.close()
    return measured, growth


def _tables(ctx: Any) -> dict[str, tuple[float, float]]:
    """(rows, bytes with indexes and TOAST) of every table; rows exact, from count(*)."""
    names = [r["relname"] for r in ctx.db.rows("SELECT relname FROM pg_stat_user_tables")]
    out = {}
    for name in names:
        rows = ctx.db.scalar(f'SELECT count(*) FROM "{name}"')  # noqa: S608 (a name Postgres listed)
        size = ctx.db.scalar("SELECT pg_total_relation_size(CAST(:n AS regclass))", n=name)
        out[name] = (float(rows), float(size))
    return out


def requests_per_second(online: int) -> dict[str, float]:
    """Request rates of the hot functions at `online` mitras, from the usage profile."""
    chats_per_s = online * CHATS_PER_MITRA_HOUR / 3600
    customers = online * CUSTOMERS_PER_MITRA
    polls_per_chat = MESSAGES_PER_CHAT + 2 * CHAT_MINUTES * 60 / POLL_SECONDS  # wake-ups plus time-outs
    return {
        "mitra-status-heartbeat": online / PING_SECONDS,
        "pairing-availability": customers / BEACON_SECONDS,
        "chat-client-send": chats_per_s * MESSAGES_PER_CHAT,
        "chat-client-messages": chats_per_s * polls_per_chat,
        "auth-refresh": (online + customers) / REFRESH_SECONDS,
    }


def _gib(memory: str) -> float:
    value = float(memory[:-2])
    return value / 1024 if memory.endswith("Mi") else value


@dataclass(frozen=True)
class Cost:
    function: str
    rps: float
    instances: float
    request_based: float
    instance_based: float

    @property
    def chosen(self) -> str:
        return "instance" if self.instance_based < self.request_based else "request"


def function_cost(m: Measured, rps: float) -> Cost:
    """Monthly cost of one function at `rps` under both billing modes."""
    fn = next(f for f in manifest.load().functions if f.name == m.function)
    vcpu = float(fn.cpu or 1)
    gib = _gib(fn.memory)
    # Instances busy: enough CPU at the target utilisation, and enough slots for what is in flight
    # (a long poll occupies a slot for its whole wait, not its CPU time).
    wall = POLL_SECONDS / 2 if m.function == "chat-client-messages" else m.wall_s
    busy = max(rps * m.cpu_s / (vcpu * TARGET_CPU), rps * wall / fn.concurrency)
    # Instance-based: the instances exist all month (at least one while traffic never stops).
    instances = max(busy, 1.0 if rps else 0.0)
    # Request-based: billed only while a request is in flight, each stretch rounded up to 100 ms
    # (the pricing page), so a sparse function is billed for about rps x 0.1 s a second.
    billed = max(busy, min(math.ceil(busy) or 1.0, rps * BILLING_GRANULE_SECONDS))
    requests = rps * MONTH_SECONDS

    def price(p: dict[str, float], instance_seconds: float) -> float:
        return instance_seconds * (vcpu * p["vcpu_s"] + gib * p["gib_s"]) + requests * p["per_request"]

    return Cost(
        m.function,
        rps,
        instances,
        price(REQUEST_BASED, billed * MONTH_SECONDS),
        price(INSTANCE_BASED, instances * MONTH_SECONDS),
    )


def cloud_sql(online: int) -> tuple[str, float]:
    """The Cloud SQL shape for `online` mitras and its monthly price (HA doubles it)."""
    vcpu = 2 if online <= 10_000 else 8
    memory = vcpu * 3.75
    monthly = 2 * 730 * (vcpu * CLOUD_SQL["vcpu_h"] + memory * CLOUD_SQL["gb_h"])
    return f"{vcpu} vCPU / {memory:g} GB, HA", monthly


def memorystore(online: int) -> str:
    """Memorystore shape: docs/capacity.md measures ~1 KB per online mitra, far below one node."""
    shards = 1 if online <= 100_000 else math.ceil(online / 1_000_000)
    return f"{shards} shard(s) x standard-small, 1 replica each"


def report(measured: list[Measured], growth: dict[str, dict[str, tuple[float, float]]]) -> str:
    load = os.getloadavg()[0]
    lines = ["# Cost at 1k, 10k and 100k online mitras", ""]
    lines += [
        "Generated by `make cost` (bench/cost.py) from one measured run; prices, pages and the date are",
        "in bench/cost.py's docstring. Per request, measured through the real entry points (one",
        f"process, embedded servers, load average {load:.1f} on 2 cores: CPU times read high on a busy",
        "machine, which makes the totals an upper bound):",
        "",
        "| function | CPU ms / request | wall ms / request |",
        "|---|---|---|",
    ]
    lines += [f"| {m.function} | {m.cpu_s * 1000:.2f} | {m.wall_s * 1000:.2f} |" for m in measured]
    lines += [
        "",
        "Usage profile per online mitra: a ping every 30 s; 1 chat an hour of 10 minutes and 20 messages;",
        "2 customers with the app open reading the beacon every 30 s; a token refresh an hour per app.",
        "",
    ]
    for online in SIZES:
        rates = requests_per_second(online)
        costs = [function_cost(m, rates[m.function]) for m in measured]
        shape, sql_price = cloud_sql(online)
        chosen = sum(min(c.request_based, c.instance_based) for c in costs)
        lines += [
            f"## {online:,} online",
            "",
            "| function | req/s | instances | request-based $/month | instance-based $/month | chosen |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c.function} | {c.rps:,.1f} | {c.instances:.1f} | {c.request_based:,.0f}"
            f" | {c.instance_based:,.0f} | {c.chosen} |"
            for c in costs
        ]
        otp = requests_per_second(online)["chat-client-send"] / MESSAGES_PER_CHAT * OTP_PER_CHAT * MONTH_SECONDS
        daily = _daily_growth(growth, rates)
        lines += [
            "",
            f"- Hot functions, cheaper mode each: **${chosen:,.0f}/month** "
            f"(all request-based: ${sum(c.request_based for c in costs):,.0f}).",
            f"- Cloud SQL {shape}: ${sql_price:,.0f}/month."
            f" Memorystore: {memorystore(online)} (price per node-hour on its page).",
            f"- SMS: {otp:,.0f} OTP a month x ${SMS_PRICE_USD} = ${otp * SMS_PRICE_USD:,.0f}.",
            "",
            "| table | rows added a day | MB added a day |",
            "|---|---|---|",
            *[f"| {table} | {rows:,.0f} | {size / 1e6:,.1f} |" for table, (rows, size) in sorted(daily.items())],
            "",
        ]
    largest = requests_per_second(SIZES[-1])
    lines += [
        f"## Billing mode per function (the manifest's `billing`, chosen at {SIZES[-1]:,} online)",
        "",
        "| function | billing | saving $/month |",
        "|---|---|---|",
    ]
    for m in measured:
        c = function_cost(m, largest[m.function])
        lines.append(f"| {c.function} | {c.chosen} | {abs(c.request_based - c.instance_based):,.0f} |")
    lines += [
        "",
        "Steady traffic that never stops (heartbeats, beacon reads, long polls) keeps instances busy all",
        "month, so instance-based billing's lower unit price and missing request fee win; a function",
        "called a few times a minute is cheaper billed per request. Functions not listed stay request-based.",
        "",
    ]
    return "\n".join(lines)


def _daily_growth(
    growth: dict[str, dict[str, tuple[float, float]]], rates: dict[str, float]
) -> dict[str, tuple[float, float]]:
    """Rows and bytes each table gains a day: the measured growth per request times the day's requests.

    Heartbeats add no row (a mitra's ping updates its row in mitra_pings); sweeps' and sign-ins'
    rows are small next to these and the retention sweep bounds them (docs/retention.md).
    """
    daily: dict[str, tuple[float, float]] = {}
    for function, tables in growth.items():
        requests = rates[function] * 86_400
        for table, (rows, size) in tables.items():
            was = daily.get(table, (0.0, 0.0))
            daily[table] = (was[0] + rows * requests, was[1] + size * requests)
    return daily


def main(argv: list[str] | None = None) -> int:
    measured, growth = measure()
    text = report(measured, growth)
    (REPO / "docs" / "cost.md").write_text(text)
    _plot(measured)
    print(text)
    return 0


def _plot(measured: list[Measured]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode in ("request_based", "instance_based"):
        totals = []
        for online in SIZES:
            rates = requests_per_second(online)
            totals.append(sum(getattr(function_cost(m, rates[m.function]), mode) for m in measured))
        ax.plot(SIZES, totals, marker="o", label=mode.replace("_", "-"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("online mitras")
    ax.set_ylabel("hot functions, USD / month")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(REPO / "docs" / "cost.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
