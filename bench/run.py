"""`make bench`: the performance suite. Starts its own Redis, prints a table and merges
the keys of CONTRACT.md into bench/results.json (the keys of `make bench-peers` stay).

    python -m bench.run [--e2e-seconds 30] [--latency-seconds 20] [--reloads 120]
                        [--inprocess-ticks 40000]

The workload is the bench's (bench/conf/ over conf/, docs/performance.md): the in-process
backtest, the stack at full speed and at 1,000 ticks/s, and `make bench-peers` all trade it.
`inprocess_shipped_*` is the same backtest on the shipped conf/.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench import scenarios
from bench.micro import inprocess
from bench.peers import merge_results
from bench.stack import BenchStack
from shared.cli import tune_gc
from shared.config import COMPONENTS, load_file

RESULTS = Path(__file__).resolve().parent / "results.json"
# Keys earlier versions of this script wrote that no longer mean anything: dropped on merge.
OBSOLETE = ("inprocess_fills_per_tick",)

GOALS = {  # issue 9's goals on a 2-core machine
    "e2e_ticks_per_s": (">=", 20_000),
    "tick_to_fill_p99_ms": ("<=", 5.0),
    "hot_reload_p99_ms": ("<=", 10.0),
    "blend_us": ("<=", 5.0),
    "size_us": ("<=", 10.0),
    "route_us": ("<=", 1.0),
}


def redis_ops_per_s(port: int, n: int = 300_000) -> float:
    """redis-benchmark, XADD with pipelining (-P 32), against the bench's own Redis."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return scenarios.python_xadd_rate(port)
    out = subprocess.run(
        [
            binary,
            "-p",
            str(port),
            "-n",
            str(n),
            "-P",
            "32",
            "-q",
            "XADD",
            "bench:xadd",
            "MAXLEN",
            "~",
            "100000",
            "*",
            "f",
            "v",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    match = re.search(
        r"([\d.]+) requests per second", out.replace("\r", "\n").splitlines()[-1] if out else ""
    )
    if not match:
        match = re.search(r"([\d.]+) requests per second", out)
    assert match, out
    return float(match.group(1))


class RssSampler(threading.Thread):
    def __init__(self, stack: BenchStack) -> None:
        super().__init__(daemon=True)
        self.stack, self.peak_mb, self.running = stack, 0.0, True

    def run(self) -> None:
        while self.running:
            self.peak_mb = max(self.peak_mb, self.stack.rss_mb())
            time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--e2e-seconds", type=float, default=30.0)
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--reloads", type=int, default=120)
    ap.add_argument("--inprocess-ticks", type=int, default=40_000)
    args = ap.parse_args()
    results: dict[str, Any] = {}
    started = time.monotonic()

    configs = {c: load_file(c) for c in COMPONENTS}
    print("micro-benchmarks ...", flush=True)
    results.update(scenarios.micro(configs))
    tune_gc()  # as in every service process (shared.cli)
    print(f"backtest in process, {args.inprocess_ticks:,} ticks, bench conf ...", flush=True)
    results.update(inprocess(scenarios.bench_configs(), args.inprocess_ticks))
    print(f"backtest in process, {args.inprocess_ticks:,} ticks, shipped conf ...", flush=True)
    results.update(
        inprocess(
            scenarios.bench_configs(shipped=True), args.inprocess_ticks, prefix="inprocess_shipped"
        )
    )

    stack = BenchStack()
    sampler = RssSampler(stack)
    try:
        print(f"redis-benchmark against port {stack.redis.port} ...", flush=True)
        results["redis_ops_per_s"] = round(redis_ops_per_s(stack.redis.port), 1)
        stack.r.delete("bench:xadd")

        print(f"end to end, as fast as accepted, {args.e2e_seconds:g} s ...", flush=True)
        scenarios.store_configs(stack.redis.url, scenarios.stack_configs(ticks_per_s=0))
        stack.start()
        sampler.start()
        results.update(scenarios.e2e_throughput(stack, args.e2e_seconds))
        stack.stop()

        print(f"tick-to-fill at 1,000 ticks/s, {args.latency_seconds:g} s ...", flush=True)
        stack.r.flushdb()
        scenarios.store_configs(stack.redis.url, scenarios.stack_configs(ticks_per_s=1_000))
        stack.start()
        results.update(scenarios.tick_to_fill(stack, args.latency_seconds))

        print(f"hot reload x{args.reloads} under 1,000 ticks/s ...", flush=True)
        results.update(scenarios.hot_reload(stack, args.reloads))
    finally:
        sampler.running = False
        stack.close()
    results["rss_mb_max"] = round(sampler.peak_mb, 1)
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    results["machine"] = {
        "cpus": psutil.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_server": stack.redis.binary,
        "load_average_1m_at_end": round(psutil.getloadavg()[0], 2),
    }
    merged = merge_results(results, RESULTS)
    if any(key in merged for key in OBSOLETE):
        for key in OBSOLETE:
            merged.pop(key, None)
        RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    print_table(results)
    return 0


def print_table(results: dict[str, Any]) -> None:
    print()
    print(f"{'metric':<28}{'value':>14}   goal")
    for key, value in results.items():
        if isinstance(value, dict):
            continue
        goal = GOALS.get(key)
        verdict = ""
        if goal:
            op, target = goal
            ok = value >= target if op == ">=" else value <= target
            verdict = f"{op} {target:g}  {'met' if ok else 'NOT met'}"
        print(f"{key:<28}{value:>14,}   {verdict}")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    raise SystemExit(main())
