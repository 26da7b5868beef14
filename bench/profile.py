"""Where the CPU goes: the stack as processes at a given tick rate (0 = as fast as
accepted); per process CPU share and per stream entries/s over a window.

    python -m bench.profile [--rate 0] [--seconds 10] [--spy model_router]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis

from bench import scenarios
from bench.stack import BenchStack

STREAMS = (
    "md.ticks",
    "features",
    "signals",
    "orders",
    "fills",
    "positions",
    "risk.decisions",
    "rejections",
    "events",
    "dlq",
)


def lengths(stack: BenchStack) -> dict[str, int]:
    out = {}
    for s in STREAMS:
        try:
            out[s] = int(stack.r.xinfo_stream(s)["entries-added"])
        except redis.ResponseError:  # not created yet
            out[s] = 0
    return out


def hop_ms(stack: BenchStack, stream: str, start_ms: int, end_ms: int) -> tuple[float, float]:
    """p50, p99 of (entry id ms - trace_ts_ns) over a window of ``stream``."""
    lat = []
    for entry_id, fields in scenarios.xrange_window(stack, stream, start_ms, end_ms, 50_000):
        trace = int(fields.get("trace_ts_ns") or fields.get("ts_ns") or 0)
        if trace:
            lat.append(int(entry_id.split("-")[0]) - trace / 1e6)
    if len(lat) < 2:
        return float("nan"), float("nan")
    q = statistics.quantiles(lat, n=100)
    return q[49], q[98]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--spy", default="", help="a service to py-spy record (svg in /tmp)")
    args = ap.parse_args()
    stack = BenchStack()
    try:
        scenarios.store_configs(stack.redis.url, scenarios.stack_configs(ticks_per_s=args.rate))
        stack.start()
        time.sleep(args.warmup)
        procs = {n: psutil.Process(p.pid) for n, p in stack.procs.items()}
        assert stack.redis.proc is not None
        procs["redis"] = psutil.Process(stack.redis.proc.pid)
        cpu0 = {n: sum(p.cpu_times()[:2]) for n, p in procs.items()}
        len0, t0 = lengths(stack), time.monotonic()
        spy = None
        if args.spy:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--idle",
                    "-r",
                    "200",
                    "-d",
                    str(int(args.seconds)),
                    "-f",
                    "raw",
                    "-o",
                    f"/tmp/spy-{args.spy}.txt",
                    "-p",
                    str(stack.procs[args.spy].pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        time.sleep(args.seconds)
        dt = time.monotonic() - t0
        cpu1 = {n: sum(p.cpu_times()[:2]) for n, p in procs.items()}
        len1 = lengths(stack)
        if spy:
            spy.wait()
        print(f"{'process':<18}{'cpu %':>8}")
        for n in procs:
            print(f"{n:<18}{100 * (cpu1[n] - cpu0[n]) / dt:8.1f}")
        print(f"{'total':<18}{100 * sum(cpu1[n] - cpu0[n] for n in procs) / dt:8.1f}")
        print(f"\n{'stream':<18}{'entries/s':>10}{'p50 ms':>9}{'p99 ms':>9}  (entry id - trace)")
        end_ms = int(time.time() * 1000)
        start_ms = end_ms - int(args.seconds * 1000)
        for s in STREAMS:
            q = hop_ms(stack, s, start_ms, end_ms)
            print(f"{s:<18}{(len1[s] - len0[s]) / dt:10.1f}{q[0]:9.2f}{q[1]:9.2f}")
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
