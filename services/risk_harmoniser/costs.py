"""Cost model (seed 003 §4), with seed 001 §6's impact: the one model of
services/execution/impact.py, which execution's fills are priced with too. All costs in
bps of the traded notional; V = the day's traded volume (USD), sigma = daily volatility.

    spread_bps   = spread_bps_quoted / 2                                    (seed 003 §4)
    impact_bps   = impact_coeff * sigma_daily_bps * sqrt(order_usd / V)    (seed 001 §6)
                   (V unknown: impact_fallback_bps * sqrt(order_usd / depth_usd), seed 003 §4)
    latency_bps  = (latency_ms / 10) * latency_bps_per_10ms (0.1)          (seed 003 §4)
    fee_bps      = the venue's schedule for the side: commission (maker or taker; at
                   least its minimum), transfer and exchange fees, the sell tax on a sell
    funding_bps  = funding_rate_bps_per_8h * hours_held / 8                 (seed 003 §4)

    one_way_bps  = spread_bps + impact_bps + latency_bps
    total_bps    = one_way_bps * (2 if round_trip else 1) + fee_entry_bps
                   + (fee_exit_bps if round_trip) + funding_bps

Trade only if |edge_bps| - total_bps > safety_margin_bps (the ``net_edge_bps`` > 0).
Before an order: ``slippage_estimate`` (seed 001 §1) on its size; refused
(``slippage_too_high``) when expected > max_slippage_bps or worst case >
max_worst_case_bps.
"""

from __future__ import annotations

from functools import lru_cache

from services.execution import impact
from services.execution.config import VenueFees
from services.execution.fill_model import Liquidity, fee_bps
from services.risk_harmoniser.config import CostParams
from shared.messages import Side, horizon_ns

MAX_HORIZON_S = 366 * 86400.0  # past a year reads as unparseable
DAY_S = impact.DAY_S


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


def round_trip_fees_bps(
    fees: VenueFees, order_usd: float, side: Side, liquidity: Liquidity
) -> tuple[float, float]:
    """(entry, exit) fee bps of an order of ``order_usd`` on ``side`` and its unwind."""
    exit_side: Side = "sell" if side == "buy" else "buy"
    notional = abs(order_usd)
    return fee_bps(notional, side, liquidity, fees), fee_bps(notional, exit_side, liquidity, fees)


def total_cost_bps(
    spread_bps: float,
    order_usd: float,
    daily_volume_usd: float,
    sigma_daily_bps: float,
    impact_coeff: float,
    depth_usd: float,
    impact_fallback_bps: float,
    fee_entry_bps: float,
    fee_exit_bps: float,
    funding_rate_bps_per_8h: float,
    hold_s: float,
    latency_ms: float,
    latency_bps_per_10ms: float,
    round_trip: bool,
) -> float:
    """total_bps of the module docstring; inf when neither volume nor depth is known."""
    imp = impact.impact_of(
        abs(order_usd),
        daily_volume_usd,
        sigma_daily_bps,
        impact_coeff,
        depth_usd,
        impact_fallback_bps,
    )
    one_way = spread_bps / 2.0 + imp + impact.latency_bps(latency_ms, latency_bps_per_10ms)
    legs = 2.0 if round_trip else 1.0
    funding = funding_rate_bps_per_8h * hold_s / 3600.0 / 8.0
    return one_way * legs + fee_entry_bps + (fee_exit_bps if round_trip else 0.0) + funding


def slippage_estimate(
    spread_bps: float,
    order_usd: float,
    daily_volume_usd: float,
    sigma_daily_bps: float,
    depth_usd: float,
    c: CostParams,
) -> impact.SlippageEstimate:
    """Seed 001 §1's pre-trade estimate of one order (services/execution/impact.py)."""
    return impact.estimate(
        spread_bps / 2.0,
        abs(order_usd),
        daily_volume_usd,
        sigma_daily_bps,
        c.impact_coeff,
        c.latency_ms,
        c.latency_bps_per_10ms,
        c.impact_sd_pct,
        c.confidence_z,
        c.worst_case_z,
        depth_usd,
        c.impact_fallback_bps,
    )


def slippage_too_high(est: impact.SlippageEstimate, c: CostParams) -> bool:
    """Seed 001 §1: refuse above max_slippage_bps (20), or a worst case above 30 bps."""
    # written as "not within" so that a NaN estimate is refused too
    return not (
        est.expected_bps <= c.max_slippage_bps and est.worst_case_bps <= c.max_worst_case_bps
    )


def net_edge_bps(edge_bps: float, cost_bps: float, safety_margin_bps: float) -> float:
    """|edge| - costs - margin: positive means the trade is worth doing."""
    return abs(edge_bps) - cost_bps - safety_margin_bps
