"""CPU per tick of feature_bus's synthetic path, in process: quotes and features
(``features_of``), the commit command's arguments (``to_fields``) and hiredis packing.

    python -m bench.source_cost
"""

from __future__ import annotations

import time

import hiredis
from redis.asyncio import Redis

from services.feature_bus.service import FeatureBus
from shared.bus import Bus
from shared.cli import tune_gc
from shared.config import BusSettings


class _Wire:
    generation = 0


def main() -> int:
    fb = FeatureBus()
    tune_gc()  # as in the service process
    bus = Bus(Redis(), "feature_bus", (), BusSettings())  # never connects
    t_features = t_args = t_pack = 0.0
    for it in range(20):
        quotes = list(fb.market.quotes(500, time.time_ns()))
        t0 = time.perf_counter()
        msgs = fb.features_of(quotes)
        t1 = time.perf_counter()
        cmd = bus._script_command(_Wire(), [(m.STREAM, m) for m in msgs], {})  # type: ignore[arg-type]
        t2 = time.perf_counter()
        hiredis.pack_command(tuple(cmd))
        t3 = time.perf_counter()
        if it >= 5:  # warmed up
            t_features, t_args, t_pack = t_features + t1 - t0, t_args + t2 - t1, t_pack + t3 - t2
    n = 15 * 500
    print(
        f"us per tick: features_of {t_features / n * 1e6:.1f}, command arguments"
        f" {t_args / n * 1e6:.1f}, hiredis pack {t_pack / n * 1e6:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
