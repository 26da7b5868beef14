"""Where the backtest's time goes: wall microseconds per tick of each service's batches
(the harness's ``step``), then the top functions under cProfile.

    python -m bench.backtest_profile [--ticks 20000] [--shipped] [--top 25] [--no-cprofile]

The per-service figures are measured without the profiler (``time.perf_counter`` around
each ``Harness.step``, so they include the merge, the watermarks and the metrics of the
runtime's ``Service.handle``); the cProfile run comes after, on fresh services, and
inflates every call by about the same factor, so read its shares, not its seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import defaultdict
from typing import Any

from bench import scenarios
from bench.micro import SEED
from services.backtest import runner
from services.feature_bus.config import FeatureBusConfig
from shared.bus import Entry, Outbox
from shared.cli import tune_gc
from shared.service import Service


def per_service_us(configs: dict[str, Any], quotes: list[Any]) -> tuple[dict[str, float], float]:
    """Wall us per tick in each service's batches, and the run's total us per tick."""
    bt = runner.Backtest(configs)
    h = bt.harness
    spent: dict[str, float] = defaultdict(float)
    step = h.step

    def timed(svc: Service[Any], entries: list[Entry]) -> Outbox:
        t0 = time.perf_counter()
        try:
            return step(svc, entries)
        finally:
            spent[svc.name] += time.perf_counter() - t0

    h.step = timed  # type: ignore[method-assign]
    res = bt.run(quotes)
    n = max(res.ticks, 1)
    return {k: v / n * 1e6 for k, v in spent.items()}, res.wall_s / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ticks", type=int, default=20_000)
    ap.add_argument("--shipped", action="store_true", help="conf/ alone, not bench/conf/")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--no-cprofile", action="store_true")
    args = ap.parse_args(argv)
    configs = scenarios.bench_configs(shipped=args.shipped)
    fb = configs["feature_bus"]
    assert isinstance(fb, FeatureBusConfig)
    quotes = runner.synthetic_quotes(fb, args.ticks, SEED)
    tune_gc()
    services, total = per_service_us(configs, quotes)
    print(f"wall us per tick, {args.ticks:,} ticks ({'conf/' if args.shipped else 'bench/conf/'})")
    for name, us in sorted(services.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<18}{us:8.1f}")
    print(f"  {'harness, other':<18}{total - sum(services.values()):8.1f}")
    print(f"  {'total':<18}{total:8.1f}   ({1e6 / total:,.0f} ticks/s)")
    if args.no_cprofile:
        return 0
    bt = runner.Backtest(configs)
    prof = cProfile.Profile()
    prof.enable()
    bt.run(quotes)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
