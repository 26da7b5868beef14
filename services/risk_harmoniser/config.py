"""Schema of conf/risk_params.yml."""

from __future__ import annotations

from pydantic import Field

from shared.config import ComponentConfig


class RiskParams(ComponentConfig):
    equity_usd: float = Field(default=1_000_000.0, gt=0)
    max_position_usd: float = Field(default=50_000.0, gt=0, description="per-name cap")
    usd_per_bps: float = Field(
        default=2_000.0, gt=0, description="target position per bp of blended edge"
    )
    min_edge_bps: float = Field(
        default=3.0, ge=0, description="hold (no new order) below this |edge|"
    )
    min_order_usd: float = Field(
        default=1_000.0, ge=0, description="smallest rebalance worth an order"
    )
    max_signal_age_ms: float = Field(default=2_000.0, gt=0)
    daily_vol_pct: float = Field(
        default=3.0, gt=0, le=100, description="assumed 1-day volatility for VaR"
    )
    var_confidence_z: float = Field(default=1.645, gt=0, description="z of the VaR quantile (95 %)")
    var_limit_pct: float = Field(default=2.0, gt=0, le=100)
