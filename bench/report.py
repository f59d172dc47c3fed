"""`make bench`: every figure of the performance goals at 1k / 10k / 100k online mitras, in one
run, next to its goal; then `docs/bench.png` (cost per path against online mitras, log scale)
and the README's benchmark table, regenerated from this run.

Bounded: the paths run 3 times per size, the throughput takes 5 paired rounds of 3 s; the whole report
takes a few minutes on a 2-core machine.

    .venv/bin/python -m bench.report [--sizes 1000,10000,100000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import coldstart, heartbeat_throughput, paths

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PLOT = ROOT / "docs" / "bench.png"
START, END = "<!-- bench-report:start -->", "<!-- bench-report:end -->"

# (figure, goal text, goal value, lower is better, key in the per-size results)
ROWS: list[tuple[str, str, float, bool, str]] = [
    ("heartbeat-mirror sweep, every online mitra pinged", "≤ 500 ms", 500, True, "heartbeat_mirror_ms"),
    ("auto-offline pass, 1 % stale (locked pass)", "≤ 30 ms", 30, True, "auto_offline_ms"),
    ("find_available(25), all available, 10 fresh", "≤ 2 ms", 2, True, "find_blackout_ms"),
    ("find_available(25), all fresh", "≤ 2 ms", 2, True, "find_fresh_ms"),
    ("reseed: longest Valkey command", "≤ 50 ms", 50, True, "reseed_block_ms"),
    ("reseed: whole", "≤ 1500 ms", 1500, True, "reseed_ms"),
    ("heartbeat throughput / bare function", "≥ 90 %", 90, False, "throughput_pct"),
]


def cpu_probe_ms() -> float:
    """The median of five runs of a fixed pure-Python loop: how fast this (shared, virtual)
    machine is right now. Load average misses a busy host; this does not."""
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)[2]


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


_STORE_ENV = ("DATABASE_URL", "VALKEY_URL", "VALKEY_PREFIX", "AUTH_JWT_SECRET", "OTP_HMAC_SECRET")


def _in_fresh_process(module: str, call: str) -> dict[str, Any]:
    """Run `bench.<module>.<call>` in its own interpreter (each bench installs its own context)."""
    code = f"import json; from bench import {module} as m; print(json.dumps(m.{call}))"
    env = {k: v for k, v in os.environ.items() if k not in _STORE_ENV}  # it starts servers of its own
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"bench.{module} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(sizes: list[int]) -> dict[str, Any]:
    """Every figure, in one run."""
    started = time.monotonic()
    load_before, probe_before = _load(), cpu_probe_ms()
    refresh = _in_fresh_process("auth_refresh_vs_login", "measure(logins=0, refreshes=200)")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        (built,) = coldstart.bundle.build_all(Path(tmp), ["heartbeat"])
        cold = coldstart.measure(built.path, 7)
    long_poll = _in_fresh_process("long_poll", "measure()")
    per_size = paths.measure(sizes, repeat=3)
    throughput = heartbeat_throughput.measure(seconds=3.0, rounds=5, clients=3, sizes=tuple(sizes))
    for n in sizes:
        per_size[n]["throughput_pct"] = throughput[n]["ratio"] * 100
        per_size[n]["bare_rps"] = throughput[n]["bare_rps"]
        per_size[n]["heartbeat_rps"] = throughput[n]["heartbeat_rps"]
    return {
        "sizes": sizes,
        "per_size": per_size,
        "cold_ms": cold["median_ms"],
        "refresh_ms": refresh["refresh_ms"],
        "long_poll": long_poll,
        "seconds": time.monotonic() - started,
        "load": f"{load_before} → {_load()}",
        "probe": f"{probe_before:.0f} → {cpu_probe_ms():.0f} ms",
    }


def _meets(value: float, goal: float, lower: bool) -> str:
    return "yes" if (value <= goal if lower else value >= goal) else "**no**"


def _fmt(value: float, key: str) -> str:
    if key == "throughput_pct":
        return f"{value:.0f} %"
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def table(r: dict[str, Any]) -> str:
    """The README table: one row per figure, one column per size, the goal, met at 100k."""
    sizes = r["sizes"]
    head = "| figure | " + " | ".join(f"{n:,} online" for n in sizes) + " | goal | met |"
    lines = [head, "|---|" + "---|" * len(sizes) + "---|---|"]
    largest = sizes[-1]
    for name, goal_text, goal, lower, key in ROWS:
        cells = " | ".join(_fmt(r["per_size"][n][key], key) for n in sizes)
        lines.append(f"| {name} | {cells} | {goal_text} | {_meets(r['per_size'][largest][key], goal, lower)} |")
    blank = " | ".join("" for _ in sizes[1:])
    lines.append(
        f"| heartbeat bundle cold import (median of 7) | {r['cold_ms']:.0f} ms | {blank} | ≤ 200 ms |"
        f" {_meets(r['cold_ms'], 200, True)} |"
    )
    lines.append(
        f"| refresh median (n=200) | {r['refresh_ms']:.2f} ms | {blank} | ≤ 3 ms | {_meets(r['refresh_ms'], 3, True)} |"
    )
    lp = r["long_poll"]
    lines.append(
        f"| chat long polls one instance holds, another read < 100 ms | {lp['held']:,} | {blank} | ≥ 1,000 |"
        f" {_meets(lp['held'], 1000, False)} |"
    )
    ratio = lp["memory_ratio"] or float("inf")
    lines.append(
        f"| memory per long poll / bare async function | {lp['kb_per_wait']:.0f} / {lp['bare_kb_per_wait']:.0f} KB"
        f" = {ratio:.2f}× | {blank} | ≤ 1.5× | {_meets(ratio, 1.5, True)} |"
    )
    lines.append(f"| one publish wakes 1,000 long polls | {lp['wake']['wake_s']:.2f} s | {blank} | – | – |")
    rps = ", ".join(
        f"{n:,}: {r['per_size'][n]['heartbeat_rps']:.0f} vs {r['per_size'][n]['bare_rps']:.0f} req/s" for n in sizes
    )
    notes = (
        f"\nOne `make bench` run, {r['seconds']:.0f} s, load average {r['load']} on this shared 2-core machine"
        f" (CPU probe, a fixed Python loop: {r['probe']}; the same loop varies by ±40 % within a minute here)."
        f" Heartbeat vs bare function: {rps}.\n"
    )
    return "\n".join(lines) + "\n" + notes


def plot(r: dict[str, Any], path: Path = PLOT) -> None:
    """Cost per path against online mitras, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = r["sizes"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for name, _, goal, lower, key in ROWS:
        if not lower:
            continue
        line = ax.plot(sizes, [r["per_size"][n][key] for n in sizes], marker="o", label=name)[0]
        ax.axhline(goal, color=line.get_color(), linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("online mitras")
    ax.set_ylabel("ms (median; dotted: goal)")
    ax.set_title("Cost per path against online mitras (make bench)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_readme(text: str, readme: Path = README) -> None:
    """Replace the block between the bench markers with `text`."""
    body = readme.read_text()
    start, end = body.index(START), body.index(END) + len(END)
    readme.write_text(body[:start] + f"{START}\n{text}{END}" + body[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--no-write", action="store_true", help="print only; leave README and docs/bench.png")
    args = parser.parse_args(argv)
    r = run([int(s) for s in args.sizes.split(",")])
    text = table(r)
    print(text)
    if not args.no_write:
        plot(r)
        write_readme(text)
        print(f"wrote {PLOT.relative_to(ROOT)} and the README benchmark table")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
