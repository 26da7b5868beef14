"""Position sizing and parametric VaR (first form).

- target_usd = clip(edge_blended_bps * usd_per_bps, -max_position_usd, +max_position_usd)
- var_pct = z * daily_vol_pct / 100 * |position_usd| / equity_usd * 100
  (one-day parametric VaR of the position, as a percent of equity)
- the target is scaled down so that var_pct(target) <= var_limit_pct
"""

from __future__ import annotations

from services.risk_harmoniser.config import RiskParams


def var_pct(position_usd: float, p: RiskParams) -> float:
    return p.var_confidence_z * p.daily_vol_pct / 100.0 * abs(position_usd) / p.equity_usd * 100.0


def target_position_usd(edge_bps: float, p: RiskParams) -> float:
    target = max(-p.max_position_usd, min(p.max_position_usd, edge_bps * p.usd_per_bps))
    var_cap_usd = (
        p.var_limit_pct / 100.0 * p.equity_usd / (p.var_confidence_z * p.daily_vol_pct / 100.0)
    )
    return max(-var_cap_usd, min(var_cap_usd, target))
