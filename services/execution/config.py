"""Schema of conf/execution.yml: the paper broker's fill model, fees, strategies, limits.

Every knob is documented with its formula in docs/execution.md.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.config import ComponentConfig, Frozen


class VenueFees(Frozen):
    """Fees of one venue in basis points of notional; a negative maker fee is a rebate."""

    taker_fee_bps: float = Field(default=2.0, ge=-50, le=100)
    maker_fee_bps: float = Field(default=-0.5, ge=-50, le=100, description="negative = rebate")


class StrategyRules(Frozen):
    """How a ``market`` order from risk is worked (seed 003 §8 as quoted in issue 7).

    Checked in this order; the first that applies wins:
    iceberg (notional above ``iceberg_above_usd``), POV (qty above
    ``pov_above_volume_pct`` of the average tick volume), TWAP (a persistent signal:
    ``twap_persistent_orders`` same-side orders for the symbol within
    ``twap_persistent_window_ms``), post-only (spread above ``post_only_spread_bps``),
    else market. ``enabled: false`` sends every market order as market.
    """

    enabled: bool = True
    iceberg_above_usd: float = Field(default=50_000.0, gt=0)
    iceberg_display_usd: float = Field(default=10_000.0, gt=0)
    iceberg_limit_bps: float = Field(default=5.0, ge=0, le=500)
    pov_above_volume_pct: float = Field(default=10.0, gt=0)
    pov_rate_pct: float = Field(default=10.0, gt=0, le=100)
    twap_persistent_orders: int = Field(default=3, ge=2, le=1_000)
    twap_persistent_window_ms: float = Field(default=10_000.0, gt=0)
    twap_slices: int = Field(default=5, ge=1, le=1_000)
    twap_interval_ms: float = Field(default=1_000.0, gt=0)
    post_only_spread_bps: float = Field(default=10.0, ge=0)
    volume_ewma_ticks: int = Field(default=50, ge=1, le=100_000)


class ExecutionConfig(ComponentConfig):
    venue: str = Field(default="paper", description="fee schedule when a tick's venue has none")
    taker_fee_bps: float = Field(default=2.0, ge=-50, le=100)
    maker_fee_bps: float = Field(default=-0.5, ge=-50, le=100, description="negative = rebate")
    venues: dict[str, VenueFees] = Field(default_factory=dict)
    max_quote_age_ms: float = Field(default=5_000.0, gt=0)
    latency_ms: float = Field(default=2.0, ge=0, le=60_000)
    impact_coef_bps: float = Field(default=10.0, ge=0, le=10_000)
    max_participation_pct: float = Field(default=50.0, gt=0, le=100)
    quote_history: int = Field(default=512, ge=2, le=100_000)
    order_timeout_ms: float = Field(default=60_000.0, gt=0)
    snapshot_interval_ms: float = Field(default=1_000.0, ge=0)
    starting_equity_usd: float = Field(default=1_000_000.0, gt=0)
    done_orders_max: int = Field(default=200_000, ge=100)
    strategies: StrategyRules = StrategyRules()

    @model_validator(mode="after")
    def _venue_names(self) -> ExecutionConfig:
        for name in self.venues:
            if not name.strip():
                raise ValueError("venues: a venue name must not be empty")
        return self

    def fees_for(self, venue: str) -> VenueFees:
        """The venue's schedule, else the top-level default."""
        fees = self.venues.get(venue)
        if fees is not None:
            return fees
        return VenueFees(taker_fee_bps=self.taker_fee_bps, maker_fee_bps=self.maker_fee_bps)
