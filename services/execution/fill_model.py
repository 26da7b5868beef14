"""The paper fill model: price, impact, fees and participation; pure functions.

Sources: seed 001 §6 and seed 003 §4 as quoted in issue 7 ("half-spread, square-root
market impact with a coefficient, maker/taker fees per venue, participation cap").

Notation: side sign d = +1 for a buy, -1 for a sell; mid m = (bid + ask) / 2;
half-spread h_bps = (ask - bid) / 2 / m * 1e4; displayed depth D on the side taken
(ask_size for a buy, bid_size for a sell); coefficient k = ``impact_coef_bps``.

- impact_bps = k * sqrt(q / D)   (square-root law, Almgren et al. 2005; k is the cost of
  taking the whole displayed depth)
- taker price = m * (1 + d * (h_bps + impact_bps) / 1e4)   (so with q -> 0 a buy pays
  the ask and a sell receives the bid)
- maker price = the order's limit price (no spread or impact paid)
- fee_usd = q * price * fee_bps / 1e4   (negative maker fee = rebate, fee_usd < 0)
- slippage_bps = d * (price - decision_price) / decision_price * 1e4 (positive = cost)
- participation cap: q_now <= cap_pct / 100 * D; the rest waits for later ticks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from shared.messages import Side, Tick

Liquidity = Literal["maker", "taker"]


def direction(side: Side) -> float:
    return 1.0 if side == "buy" else -1.0


def mid_price(q: Tick) -> float:
    return (q.bid + q.ask) / 2.0


def half_spread_bps(q: Tick) -> float:
    mid = mid_price(q)
    return (q.ask - q.bid) / 2.0 / mid * 1e4


def depth(q: Tick, side: Side) -> float:
    """Displayed size a taker of ``side`` consumes: the ask for a buy, the bid for a sell."""
    return q.ask_size if side == "buy" else q.bid_size


def impact_bps(qty: float, depth_qty: float, coef_bps: float) -> float:
    """impact_bps = k * sqrt(q / D); infinite when nothing is displayed."""
    if qty <= 0:
        return 0.0
    if depth_qty <= 0:
        return math.inf
    return coef_bps * math.sqrt(qty / depth_qty)


def taker_price(q: Tick, side: Side, qty: float, coef_bps: float) -> tuple[float, float]:
    """(price, impact_bps) for taking ``qty`` against quote ``q``."""
    imp = impact_bps(qty, depth(q, side), coef_bps)
    price = mid_price(q) * (1.0 + direction(side) * (half_spread_bps(q) + imp) / 1e4)
    return price, imp


def max_qty_within_limit(q: Tick, side: Side, limit: float, coef_bps: float) -> float:
    """Largest q whose taker price stays at or inside ``limit``: solve
    m * (1 + d*(h + k*sqrt(q/D))/1e4) = limit for q = D * (room_bps / k)^2, where
    room_bps = d * (limit / m - 1) * 1e4 - h. 0 when the touch is already through it."""
    mid = mid_price(q)
    room_bps = direction(side) * (limit / mid - 1.0) * 1e4 - half_spread_bps(q)
    if room_bps < -1e-9:
        return 0.0
    if coef_bps <= 0:
        return math.inf
    return depth(q, side) * (max(room_bps, 0.0) / coef_bps) ** 2


def participation_cap(q: Tick, side: Side, cap_pct: float) -> float:
    """Largest quantity one tick may fill: cap_pct % of the displayed depth taken."""
    return cap_pct / 100.0 * depth(q, side)


def traded_through(q: Tick, side: Side, price: float) -> bool:
    """A resting order fills only when the market trades through it (seed 003 §8 as
    quoted in issue 7): for a buy at P, the ask (or last trade) goes strictly below P;
    for a sell, strictly above."""
    if side == "buy":
        return q.ask < price or (q.last is not None and q.last < price)
    return q.bid > price or (q.last is not None and q.last > price)


def marketable(q: Tick, side: Side, limit: float) -> bool:
    """A limit order crosses the spread on arrival: buy limit >= ask, sell limit <= bid."""
    return q.ask <= limit if side == "buy" else q.bid >= limit


def fee_usd(qty: float, price: float, fee_bps: float) -> float:
    return qty * price * fee_bps / 1e4


def slippage_bps(side: Side, price: float, decision_price: float) -> float:
    return direction(side) * (price - decision_price) / decision_price * 1e4


@dataclass(frozen=True, slots=True)
class PricedFill:
    """One priced (partial) fill before it becomes a Fill message."""

    qty: float
    price: float
    liquidity: Liquidity
    impact_bps: float
    half_spread_bps: float
    quote: Tick
