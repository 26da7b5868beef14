"""Schema of conf/execution.yml: the paper broker's fill model, fees, strategies, limits.

Every knob is documented with its formula in docs/execution.md.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, model_validator

from shared.config import ComponentConfig, Frozen

AssetClass = Literal["crypto", "stocks"]
log = logging.getLogger("edgebus.config")


def renamed_key(data: Any, old: str, new: str, where: str) -> Any:
    """Accept a deprecated key: log what to write instead; its value is kept only when it
    is 0 (impact off), since the new key has a new meaning and unit (CHANGELOG.md)."""
    if not isinstance(data, dict) or old not in data:
        return data
    data = dict(data)
    value = data.pop(old)
    log.warning(
        "%s%s is deprecated, write %s%s: the impact is now impact_coeff * sigma_daily_bps"
        " * sqrt(qty / daily_volume) (seed 001 §6); %s=%r %s",
        where,
        old,
        where,
        new,
        old,
        value,
        f"-> {new}=0 (impact off)" if value == 0 else f"is ignored, {new} keeps its value",
    )
    if value == 0:
        data[new] = 0.0
    return data


class VenueFees(Frozen):
    """One fee schedule, bps of notional (seed 003 §4 maker/taker; seed 001 §6 the
    A-share table): commission (maker or taker; a negative maker fee is a rebate, with no
    minimum), at least ``min_commission_usd`` per fill when positive; transfer and
    exchange fees on both sides; ``sell_tax_bps`` (stamp duty) on sells only."""

    taker_fee_bps: float = Field(default=4.0, ge=-50, le=100, description="seed 003 §4: 4-5")
    maker_fee_bps: float = Field(default=2.0, ge=-50, le=100, description="seed 003 §4: 2-5")
    min_commission_usd: float = Field(default=0.0, ge=0, description="per fill, quote ccy")
    sell_tax_bps: float = Field(default=0.0, ge=0, le=1_000, description="stamp duty, sells")
    transfer_fee_bps: float = Field(default=0.0, ge=0, le=1_000)
    exchange_fee_bps: float = Field(default=0.0, ge=0, le=1_000)


def schedule_for(venues: dict[str, VenueFees], venue: str, asset_class: str) -> VenueFees | None:
    """The fee schedule of a venue and asset class, the most specific first:
    ``'<venue>:<asset class>'``, ``'<venue>'``, ``'<asset class>'`` (any venue)."""
    for key in (f"{venue}:{asset_class}", venue, asset_class):
        fees = venues.get(key)
        if fees is not None:
            return fees
    return None


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
    taker_fee_bps: float = Field(default=4.0, ge=-50, le=100, description="seed 003 §4: 4-5")
    maker_fee_bps: float = Field(default=2.0, ge=-50, le=100, description="seed 003 §4: 2-5")
    venues: dict[str, VenueFees] = Field(
        default_factory=dict, description="by '<venue>:<asset class>' or '<venue>'"
    )
    asset_classes: dict[str, AssetClass] = Field(
        default_factory=dict, description="symbol -> class; else BASE-QUOTE is crypto"
    )
    max_quote_age_ms: float = Field(default=5_000.0, gt=0)
    latency_ms: float = Field(default=2.0, ge=0, le=60_000)
    impact_coeff: float = Field(default=0.15, ge=0, le=100, description="seed 001 §6")
    impact_fallback_bps: float = Field(default=5.0, ge=0, le=10_000, description="seed 003 §4")
    latency_bps_per_10ms: float = Field(default=0.1, ge=0, le=100, description="seed 003 §4")
    max_daily_participation_pct: float = Field(default=5.0, gt=0, le=100, description="seed 001")
    volume_half_life_s: float = Field(default=432_000.0, gt=0, description="daily stats")
    prior_daily_vol_bps: float = Field(default=300.0, gt=0, le=10_000)
    prior_weight_s: float = Field(default=3_600.0, ge=0)
    max_participation_pct: float = Field(default=50.0, gt=0, le=100)
    # seed 003 §4: funding = rate_bps * hours_held / 8, per asset class (no seed rate:
    # 1 bps per 8 h for crypto perpetuals, none for cash stocks), as risk's cost model
    funding_rate_bps_per_8h: dict[str, float] = Field(
        default_factory=lambda: {"crypto": 1.0, "stocks": 0.0}
    )
    quote_history: int = Field(default=512, ge=2, le=100_000)
    order_timeout_ms: float = Field(default=60_000.0, gt=0)
    snapshot_interval_ms: float = Field(default=1_000.0, ge=0)
    starting_equity_usd: float = Field(default=1_000_000.0, gt=0)
    done_orders_max: int = Field(default=200_000, ge=100)
    strategies: StrategyRules = StrategyRules()

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        return renamed_key(data, "impact_coef_bps", "impact_coeff", "")

    @model_validator(mode="after")
    def _venue_names(self) -> ExecutionConfig:
        for name in self.venues:
            if not name.strip():
                raise ValueError("venues: a venue name must not be empty")
        return self

    def asset_class(self, symbol: str) -> AssetClass:
        """Configured, else by name as risk does: ``BASE-QUOTE`` pairs are crypto."""
        return self.asset_classes.get(symbol) or ("crypto" if "-" in symbol else "stocks")

    def funding_rate_for(self, symbol: str) -> float:
        """The symbol's funding rate, bps per 8 h held (0 for a class not listed)."""
        return self.funding_rate_bps_per_8h.get(self.asset_class(symbol), 0.0)

    def fees_for(self, venue: str, symbol: str = "") -> VenueFees:
        """``schedule_for``, else the top-level maker/taker default."""
        fees = schedule_for(self.venues, venue, self.asset_class(symbol) if symbol else "")
        if fees is not None:
            return fees
        return VenueFees(taker_fee_bps=self.taker_fee_bps, maker_fee_bps=self.maker_fee_bps)
