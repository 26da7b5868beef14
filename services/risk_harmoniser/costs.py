"""Cost model (seed 003 §4 as quoted in issue 5; fees seed 002). All costs in bps of
the traded notional.

    spread_bps   = spread_bps_quoted / 2
    impact_bps   = impact_coeff_bps * sqrt(participation),
                   participation = min(1, order_usd / liquidity_usd)
    fee_bps      = the venue's maker or taker fee (a negative maker fee is a rebate)
    funding_bps  = funding_bps_per_hour * hours_held
    latency_bps  = sigma_bps_per_sqrt_s * sqrt(latency_s)   (adverse move while in flight)

    one_way_bps  = spread_bps + impact_bps + fee_bps
    total_bps    = one_way_bps * (2 if round_trip else 1) + funding_bps + latency_bps

Trade only if |edge_bps| - total_bps > safety_margin_bps (the ``net_edge_bps`` > 0).
"""

from __future__ import annotations

import math
from functools import lru_cache

from shared.messages import horizon_ns

MAX_HORIZON_S = 366 * 86400.0  # past a year reads as unparseable


@lru_cache(maxsize=1024)  # one regex per signal otherwise; routers use a handful of horizons
def horizon_s(horizon: str, default_s: float) -> float:
    """A signal's horizon in seconds ('30s' -> 30, '1m' -> 60, '4h' -> 14400; the grammar
    of ``shared.messages.horizon_ns``). Malformed, or longer than ``MAX_HORIZON_S``:
    ``default_s``."""
    try:
        seconds = horizon_ns(horizon) / 1e9
    except (ValueError, OverflowError):  # overflow: more digits than a float holds
        return default_s
    return seconds if seconds <= MAX_HORIZON_S else default_s


def impact_bps(order_usd: float, liquidity_usd: float, impact_coeff_bps: float) -> float:
    """impact_coeff_bps * sqrt(min(1, order_usd / liquidity_usd)); full coeff if no liquidity."""
    if liquidity_usd <= 0.0:
        return impact_coeff_bps
    return impact_coeff_bps * math.sqrt(min(1.0, abs(order_usd) / liquidity_usd))


def latency_bps(sigma_bps_per_sqrt_s: float, latency_ms: float) -> float:
    """Expected adverse move while the order is in flight: sigma * sqrt(latency_s)."""
    return sigma_bps_per_sqrt_s * math.sqrt(latency_ms / 1000.0)


def total_cost_bps(
    spread_bps: float,
    order_usd: float,
    liquidity_usd: float,
    impact_coeff_bps: float,
    fee_bps: float,
    funding_bps_per_hour: float,
    hold_s: float,
    sigma_bps_per_sqrt_s: float,
    latency_ms: float,
    round_trip: bool,
) -> float:
    """total_bps of the module docstring."""
    one_way = spread_bps / 2.0 + impact_bps(order_usd, liquidity_usd, impact_coeff_bps) + fee_bps
    funding = funding_bps_per_hour * hold_s / 3600.0
    return (
        one_way * (2.0 if round_trip else 1.0)
        + funding
        + latency_bps(sigma_bps_per_sqrt_s, latency_ms)
    )


def net_edge_bps(edge_bps: float, cost_bps: float, safety_margin_bps: float) -> float:
    """|edge| - costs - margin: positive means the trade is worth doing."""
    return abs(edge_bps) - cost_bps - safety_margin_bps
