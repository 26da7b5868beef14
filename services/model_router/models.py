"""Alpha models: pure functions of one symbol's features -> (edge_bps, confidence).

Seed 004 formulas, with units made explicit:
- order-book pressure: edge_bps = 25 * (bid_size - ask_size) / (bid_size + ask_size),
  so a one-sided book is worth 25 bps; confidence = |imbalance|.
- MA momentum: edge_bps = 40 * (ma_short - ma_long) / ma_long, with the ratio read in
  percent (a 0.1 % gap -> 4 bps), clipped to +-50 bps; confidence grows with the gap
  and saturates at a 0.25 % gap.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.messages import Features

Prediction = tuple[float, float]  # (edge_bps, confidence in [0, 1])


def book_pressure(f: Features) -> Prediction:
    depth = f.bid_size + f.ask_size
    if depth <= 0:
        return 0.0, 0.0
    imbalance = (f.bid_size - f.ask_size) / depth
    return 25.0 * imbalance, min(1.0, abs(imbalance))


def ma_momentum(f: Features) -> Prediction:
    if f.ema_long <= 0:
        return 0.0, 0.0
    gap_pct = (f.ema_short - f.ema_long) / f.ema_long * 100.0
    edge_bps = max(-50.0, min(50.0, 40.0 * gap_pct))
    return edge_bps, min(1.0, abs(gap_pct) / 0.25)


MODELS: dict[str, Callable[[Features], Prediction]] = {
    "book_pressure": book_pressure,
    "ma_momentum": ma_momentum,
}
