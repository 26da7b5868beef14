"""A seeded, regime-switching synthetic market (the default source).

Deterministic for a given seed: the same config gives the same quote sequence (only
the timestamps differ). Each symbol walks through regimes, each lasting a geometric
number of ticks (mean ``regime_ticks``, panics shorter), in the order drawn from its own
generator, so every downstream path (seed 003 §2 regimes) gets exercised:

| regime   | mid (per tick)                                   | spread            | depth / volume |
|----------|--------------------------------------------------|-------------------|----------------|
| trend    | drift +-0.6 sigma, sigma = vol_bps_per_tick       | x1                | x1             |
| range    | mean-reverting (kappa 0.3) around its start, sigma 6 bps | x1       | x1             |
| panic    | drift -0.4 sigma, sigma 25 bps, 2 % chance of a 2.5-4 % jump down | x4 | x4 volume, x0.5 depth |
| illiquid | sigma = vol_bps_per_tick                          | max(x20, 60 bps)  | x0.1           |

Book imbalance is persistent (AR(1)) and drift follows it a little, so order-book
pressure carries information as in a real book.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from services.feature_bus.config import FeatureBusConfig, SymbolSpec
from shared.messages import SCHEMA_VERSION, RawQuote

REGIMES = ("trend", "range", "panic", "illiquid")
# A weak pull of log(mid) back to the start price, per tick (half-life about 700 ticks
# of a symbol): panics drift down and jump down with no regime to undo them, so without
# it a long run at full speed (hundreds of thousands of ticks) walked prices towards 0.
PULL_PER_TICK = 1e-3


class SymbolWalk:
    __slots__ = (
        "spec",
        "mid",
        "imbalance",
        "rng",
        "regime",
        "left",
        "direction",
        "anchor",
        "mean_ticks",
    )

    def __init__(self, spec: SymbolSpec, rng: random.Random, mean_ticks: int) -> None:
        self.spec = spec
        self.mid = spec.start_price
        self.imbalance = 0.0
        self.rng = rng
        self.mean_ticks = mean_ticks
        self.regime = "trend"
        self.direction = 1.0
        self.anchor = self.mid
        self.left = self._length()

    def _length(self) -> int:
        mean = self.mean_ticks // 2 if self.regime == "panic" else self.mean_ticks
        return 20 + int(self.rng.expovariate(1.0 / mean))

    def _switch(self) -> None:
        self.regime = self.rng.choice([r for r in REGIMES if r != self.regime])
        self.direction = self.rng.choice((-1.0, 1.0))
        self.anchor = self.mid
        self.left = self._length()

    def step(self, ts_ns: int) -> RawQuote:
        s, rng = self.spec, self.rng
        if self.left <= 0:
            self._switch()
        self.left -= 1
        regime = self.regime
        sigma = s.vol_bps_per_tick / 1e4
        spread_mult, depth_mult, volume_mult = 1.0, 1.0, 1.0
        log_step = 0.3 * sigma * self.imbalance - PULL_PER_TICK * math.log(self.mid / s.start_price)
        if regime == "trend":
            log_step += 0.6 * sigma * self.direction + sigma * rng.gauss(0.0, 1.0)
        elif regime == "range":
            log_step += -0.3 * math.log(self.mid / self.anchor) + 6e-4 * rng.gauss(0.0, 1.0)
        elif regime == "panic":
            sigma = 25e-4
            log_step += -0.4 * sigma + sigma * rng.gauss(0.0, 1.0)
            if rng.random() < 0.02:
                log_step += math.log(1.0 - rng.uniform(0.025, 0.04))
            spread_mult, depth_mult, volume_mult = 4.0, 0.5, 4.0
        else:  # illiquid
            log_step += sigma * rng.gauss(0.0, 1.0)
            spread_mult = max(20.0, 60.0 / s.spread_bps)
            depth_mult = volume_mult = 0.1
        self.mid *= math.exp(log_step)
        self.imbalance = 0.9 * self.imbalance + 0.3 * rng.uniform(-1.0, 1.0)
        self.imbalance = max(-0.95, min(0.95, self.imbalance))
        spread = self.mid * s.spread_bps * spread_mult / 1e4 * rng.lognormvariate(0.0, 0.25)
        depth = depth_mult * s.mean_size * (rng.expovariate(1.0) * 2 + 1e-3)
        # Built, not validated: every value is computed here, finite and of its type.
        return RawQuote.trusted(
            {  # every field, in RawQuote's order (see Message.trusted)
                "v": SCHEMA_VERSION,
                "trace_ts_ns": ts_ns,
                "symbol": s.symbol,
                "ts_ns": ts_ns,
                "bid": round(self.mid - spread / 2, 8),
                "ask": round(self.mid + spread / 2, 8),
                "bid_size": round(depth * (1 + self.imbalance) / 2, 6),
                "ask_size": round(depth * (1 - self.imbalance) / 2, 6),
                "last": None,
                "volume": round(volume_mult * rng.expovariate(1.0 / s.mean_size), 6),
                "source": "synthetic",
                "session": "",
                "recv_ts_ns": ts_ns,
                "line": 0,
            }
        )


class SyntheticMarket:
    """Round-robin over the configured symbols."""

    def __init__(self, cfg: FeatureBusConfig) -> None:
        rng = random.Random(cfg.seed)
        self.walks = [
            SymbolWalk(spec, random.Random(rng.getrandbits(64)), cfg.regime_ticks)
            for spec in cfg.symbols
        ]
        self._i = 0

    def quotes(self, n: int, ts_ns: int) -> Iterator[RawQuote]:
        for k in range(n):
            walk = self.walks[self._i % len(self.walks)]
            self._i += 1
            yield walk.step(ts_ns + k)

    ticks = quotes  # the former name, still used by bench/micro.py
