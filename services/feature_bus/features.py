"""Incremental per-symbol features: pure, O(1) per tick, no I/O.

- mid = (bid + ask) / 2
- spread_bps = (ask - bid) / mid * 1e4
- book_pressure = (bid_size - ask_size) / (bid_size + ask_size), in [-1, 1]
- EMA with alpha = 2 / (n + 1) over n ticks
- return_bps = (mid_t / mid_{t-1} - 1) * 1e4
- volatility_bps: EWMA standard deviation of return_bps (RiskMetrics form,
  lambda = 0.5 ** (1 / half_life_ticks)); volatility_pct = volatility_bps / 100
"""

from __future__ import annotations

import hashlib
import math
import struct

from services.feature_bus.config import FeatureParams
from shared.messages import Features, Regime, Tick


def features_hash(values: tuple[float, ...]) -> str:
    """blake2b-64 over the feature values rounded to 10 significant digits."""
    packed = struct.pack(f"{len(values)}d", *(float(f"{v:.10g}") for v in values))
    return hashlib.blake2b(packed, digest_size=8).hexdigest()


def classify(
    trend_bps: float, volatility_bps: float, spread_bps: float, p: FeatureParams
) -> Regime:
    """First regime label (seed 003 §2, simplified until ADX lands):
    ILLIQUID when the spread is wide, PANIC when volatile and falling, TREND when the
    EMAs diverge, else RANGE."""
    if spread_bps > p.illiquid_spread_bps:
        return "ILLIQUID"
    if volatility_bps > p.panic_vol_bps and trend_bps < 0:
        return "PANIC"
    if abs(trend_bps) > p.trend_threshold_bps:
        return "TREND"
    return "RANGE"


class FeatureState:
    """Running state of one symbol."""

    __slots__ = (
        "p",
        "a_short",
        "a_long",
        "lam",
        "ema_short",
        "ema_long",
        "var_bps2",
        "prev_mid",
        "n",
    )

    def __init__(self, p: FeatureParams) -> None:
        self.p = p
        self.a_short = 2.0 / (p.ema_short_ticks + 1)
        self.a_long = 2.0 / (p.ema_long_ticks + 1)
        self.lam = 0.5 ** (1.0 / p.vol_halflife_ticks)
        self.ema_short = 0.0
        self.ema_long = 0.0
        self.var_bps2 = 0.0
        self.prev_mid = 0.0
        self.n = 0

    def update(self, tick: Tick) -> Features:
        mid = (tick.bid + tick.ask) / 2.0
        spread_bps = (tick.ask - tick.bid) / mid * 1e4
        depth = tick.bid_size + tick.ask_size
        pressure = (tick.bid_size - tick.ask_size) / depth if depth > 0 else 0.0
        if self.n == 0:
            self.ema_short = self.ema_long = mid
            ret_bps = 0.0
        else:
            self.ema_short += self.a_short * (mid - self.ema_short)
            self.ema_long += self.a_long * (mid - self.ema_long)
            ret_bps = (mid / self.prev_mid - 1.0) * 1e4
            self.var_bps2 = self.lam * self.var_bps2 + (1.0 - self.lam) * ret_bps * ret_bps
        self.prev_mid = mid
        self.n += 1
        vol_bps = math.sqrt(self.var_bps2)
        trend_bps = (self.ema_short / self.ema_long - 1.0) * 1e4
        regime = classify(trend_bps, vol_bps, spread_bps, self.p)
        values = (mid, spread_bps, pressure, self.ema_short, self.ema_long, ret_bps, vol_bps)
        return Features(
            trace_ts_ns=tick.trace_ts_ns,
            symbol=tick.symbol,
            ts_ns=tick.ts_ns,
            mid=mid,
            spread_bps=spread_bps,
            regime=regime,
            features_hash=features_hash(values),
            bid=tick.bid,
            ask=tick.ask,
            bid_size=tick.bid_size,
            ask_size=tick.ask_size,
            book_pressure=pressure,
            ema_short=self.ema_short,
            ema_long=self.ema_long,
            return_bps=ret_bps,
            volatility_pct=vol_bps / 100.0,
        )
