"""Microbenchmarks of the pure cores, and the whole pipeline in one process.

`inprocess_ticks_per_s` is the backtest's throughput (`services/backtest/runner.py`:
the stack's own handlers on the in-memory harness, the same event-time merge and
watermarks, no Redis, no encoding): the ratio to `e2e_ticks_per_s` is the cost of
distribution.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.backtest import runner
from services.feature_bus.config import FeatureBusConfig
from shared.config import ComponentConfig

BENCH_CONF = Path(__file__).resolve().parent / "conf"  # the bench's workload (docs/performance.md)
SEED = 7


def per_call_us(fn: Callable[[], Any], *, calls: int = 20_000, repeats: int = 7) -> float:
    """Median over ``repeats`` runs of the mean time per call, in microseconds."""
    fn()  # warm caches
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - t0) / calls / 1e3)
    return statistics.median(samples)


def backtest(
    configs: dict[str, ComponentConfig], ticks: int, *, seed: int = SEED, repeats: int = 1
) -> runner.Result:
    """``edgebus backtest --synthetic`` in process: the best of ``repeats`` runs (each on a
    fresh Backtest; the quotes are made before the clock starts, as the CLI does)."""
    fb = configs["feature_bus"]
    assert isinstance(fb, FeatureBusConfig)
    quotes = runner.synthetic_quotes(fb, ticks, seed)
    best: runner.Result | None = None
    for _ in range(repeats):
        res = runner.Backtest(configs).run(quotes)
        if best is None or res.wall_s < best.wall_s:
            best = res
    assert best is not None
    return best


def inprocess(
    configs: dict[str, ComponentConfig], ticks: int, *, prefix: str = "inprocess", repeats: int = 1
) -> dict[str, float]:
    """``<prefix>_ticks_per_s``, ``<prefix>_orders_per_1k_ticks``, ``<prefix>_fills_per_1k_ticks``."""
    res = backtest(configs, ticks, repeats=repeats)
    run = res.run_section()
    return {
        f"{prefix}_ticks_per_s": run["ticks_per_s"],
        f"{prefix}_orders_per_1k_ticks": round(run["orders_per_1k_ticks"], 2),
        f"{prefix}_fills_per_1k_ticks": round(1_000 * run["fills"] / max(run["ticks"], 1), 2),
    }
