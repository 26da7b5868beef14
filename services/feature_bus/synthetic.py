"""A seeded synthetic market: geometric Brownian mid, random spread and book sizes.

Deterministic for a given seed: the same config gives the same tick sequence (only
the timestamps differ). Book imbalance is persistent (AR(1)) so order-book pressure
carries information, as in a real book.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from services.feature_bus.config import FeatureBusConfig, SymbolSpec
from shared.messages import Tick


class SymbolWalk:
    __slots__ = ("spec", "mid", "imbalance", "rng")

    def __init__(self, spec: SymbolSpec, rng: random.Random) -> None:
        self.spec = spec
        self.mid = spec.start_price
        self.imbalance = 0.0
        self.rng = rng

    def step(self, ts_ns: int) -> Tick:
        s, rng = self.spec, self.rng
        # Pressure leads price a little: drift follows the current imbalance.
        sigma = s.vol_bps_per_tick / 1e4
        drift = 0.3 * sigma * self.imbalance
        self.mid *= math.exp(drift + sigma * rng.gauss(0.0, 1.0) - 0.5 * sigma * sigma)
        self.imbalance = 0.9 * self.imbalance + 0.1 * rng.uniform(-1.0, 1.0) * 3
        self.imbalance = max(-0.95, min(0.95, self.imbalance))
        spread = self.mid * s.spread_bps / 1e4 * rng.lognormvariate(0.0, 0.25)
        depth = s.mean_size * rng.expovariate(1.0) * 2 + 1e-3
        bid_size = depth * (1 + self.imbalance) / 2
        ask_size = depth * (1 - self.imbalance) / 2
        return Tick(
            trace_ts_ns=ts_ns,
            symbol=s.symbol,
            ts_ns=ts_ns,
            bid=round(self.mid - spread / 2, 8),
            ask=round(self.mid + spread / 2, 8),
            bid_size=round(bid_size, 6),
            ask_size=round(ask_size, 6),
            volume=round(rng.expovariate(1.0 / s.mean_size), 6),
        )


class SyntheticMarket:
    """Round-robin over the configured symbols."""

    def __init__(self, cfg: FeatureBusConfig) -> None:
        rng = random.Random(cfg.seed)
        self.walks = [SymbolWalk(spec, random.Random(rng.getrandbits(64))) for spec in cfg.symbols]
        self._i = 0

    def ticks(self, n: int, ts_ns: int) -> Iterator[Tick]:
        for k in range(n):
            walk = self.walks[self._i % len(self.walks)]
            self._i += 1
            yield walk.step(ts_ns + k)
