"""The paper fill model: price, impact, fees and participation; pure functions.

Sources: seed 001 §6 (square-root impact on daily volume with a volatility term,
participation at most 5 % of the day's volume, the A-share fee table, fill types),
seed 003 §4 (half-spread, maker/taker fees per venue). The impact itself is
``services/execution/impact.py``, the one model risk's pre-trade estimate uses too.

Notation: side sign d = +1 for a buy, -1 for a sell; mid m = (bid + ask) / 2;
half-spread h_bps = (ask - bid) / 2 / m * 1e4; displayed depth D on the side taken
(ask_size for a buy, bid_size for a sell); V = the day's volume and sigma the daily
volatility (``impact.DailyStats``); Y = ``impact_coeff``.

- impact_bps = Y * sigma_daily_bps * sqrt(q / V); while V is unknown (before a symbol's
  second quote) seed 003 §4's F * sqrt(q / D), F = ``impact_fallback_bps`` (5)
- taker price = m * (1 + d * (h_bps + impact_bps) / 1e4)   (so with q -> 0 a buy pays
  the ask and a sell receives the bid)
- maker price = the order's limit price (no spread or impact paid)
- fees_usd = max(N * commission_bps / 1e4, min_commission_usd)   (commission >= 0;
  a rebate has no minimum) + N * (transfer_bps + exchange_bps) / 1e4
  + N * sell_tax_bps / 1e4 on sells, N = q * price
- slippage_bps = d * (price - decision_price) / decision_price * 1e4 (positive = cost)
- caps: one act fills at most max_participation_pct / 100 * D; one order at most
  max_daily_participation_pct / 100 * V (the rest is cancelled: ``participation_cap``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from services.execution import impact
from services.execution.config import VenueFees
from shared.messages import Side, Tick

Liquidity = Literal["maker", "taker"]
FillType = Literal["full", "partial", "none", "expired"]


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


@dataclass(frozen=True, slots=True)
class Market:
    """What the impact needs about a symbol besides its quote: the day's volume (units
    of the symbol; 0 = unknown, no impact and no daily cap) and the daily volatility."""

    daily_volume: float = 0.0
    sigma_daily_bps: float = 0.0
    coeff: float = 0.0
    fallback_bps: float = 0.0


def impact_bps(qty: float, m: Market, depth_qty: float) -> float:
    """``impact.impact_of``: on the day's volume, else on the displayed depth."""
    return impact.impact_of(
        qty, m.daily_volume, m.sigma_daily_bps, m.coeff, depth_qty, m.fallback_bps
    )


def taker_price(q: Tick, side: Side, qty: float, m: Market) -> tuple[float, float]:
    """(price, impact_bps) for taking ``qty`` against quote ``q``."""
    imp = impact_bps(qty, m, depth(q, side))
    price = mid_price(q) * (1.0 + direction(side) * (half_spread_bps(q) + imp) / 1e4)
    return price, imp


def max_qty_within_limit(q: Tick, side: Side, limit: float, m: Market) -> float:
    """Largest q whose taker price stays at or inside ``limit``: solve
    m * (1 + d*(h + Y*sigma*sqrt(q/V))/1e4) = limit for q = V * (room_bps / (Y*sigma))^2,
    room_bps = d * (limit / m - 1) * 1e4 - h. 0 when the touch is already through it."""
    mid = mid_price(q)
    room_bps = direction(side) * (limit / mid - 1.0) * 1e4 - half_spread_bps(q)
    if room_bps < -1e-9:
        return 0.0
    if m.daily_volume <= 0:  # seed 003 §4's law on the depth: q = D * (room / F)^2
        if m.fallback_bps <= 0:
            return math.inf
        return depth(q, side) * (max(room_bps, 0.0) / m.fallback_bps) ** 2
    return impact.max_qty_within_bps(room_bps, m.daily_volume, m.sigma_daily_bps, m.coeff)


def daily_cap_qty(m: Market, cap_pct: float) -> float:
    """Seed 001 §6: an order fills at most cap_pct % of the day's volume; inf if unknown."""
    return cap_pct / 100.0 * m.daily_volume if m.daily_volume > 0 else math.inf


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


def fee_usd(qty: float, price: float, side: Side, liquidity: Liquidity, fees: VenueFees) -> float:
    """The module docstring's fees_usd for one fill (negative: a maker rebate)."""
    notional = qty * price
    rate = fees.taker_fee_bps if liquidity == "taker" else fees.maker_fee_bps
    commission = notional * rate / 1e4
    if rate >= 0 and notional > 0:
        commission = max(commission, fees.min_commission_usd)
    other_bps = fees.transfer_fee_bps + fees.exchange_fee_bps
    if side == "sell":
        other_bps += fees.sell_tax_bps
    return commission + notional * other_bps / 1e4


def fee_bps(notional_usd: float, side: Side, liquidity: Liquidity, fees: VenueFees) -> float:
    """fee_usd as bps of the notional (the minimum commission weighs on small fills)."""
    if notional_usd <= 0:
        return 0.0
    return fee_usd(notional_usd, 1.0, side, liquidity, fees) / notional_usd * 1e4


def fill_type(qty: float, filled_qty: float, reason: str = "") -> FillType:
    """Seed 001 §6's fill types for an order that left the working set: ``full``
    everything filled; ``partial`` some filled, the rest cancelled (whatever the reason);
    ``expired`` nothing filled before ``order_timeout_ms``; ``none`` nothing filled,
    refused."""
    if filled_qty > 0 and filled_qty >= qty * (1 - 1e-12):
        return "full"
    if filled_qty > 0:
        return "partial"
    return "expired" if reason == "expired" else "none"


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
