"""Schema of conf/feature_bus.yml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from shared.config import ComponentConfig, Frozen


class SymbolSpec(Frozen):
    symbol: str = Field(min_length=1, max_length=64)
    asset_class: Literal["crypto", "stocks", "fx", "futures"] = "crypto"
    start_price: float = Field(gt=0)
    vol_bps_per_tick: float = Field(default=2.0, ge=0, le=500)
    spread_bps: float = Field(default=2.0, gt=0, le=1_000)
    mean_size: float = Field(default=5.0, gt=0)


class FeatureParams(Frozen):
    """Feature windows (in ticks) and regime thresholds (seed 003 §2)."""

    ema_short_ticks: int = Field(default=10, ge=1)
    ema_long_ticks: int = Field(default=50, ge=2)
    vol_halflife_ticks: int = Field(default=50, ge=1)
    trend_threshold_bps: float = Field(default=5.0, ge=0)
    panic_vol_bps: float = Field(default=25.0, gt=0)
    illiquid_spread_bps: float = Field(default=50.0, gt=0)

    @model_validator(mode="after")
    def _windows(self) -> FeatureParams:
        if self.ema_short_ticks >= self.ema_long_ticks:
            raise ValueError("ema_short_ticks must be smaller than ema_long_ticks")
        return self


class FeatureBusConfig(ComponentConfig):
    source: Literal["synthetic"] = "synthetic"
    seed: int = 7
    ticks_per_s: float = Field(
        default=50.0, ge=0, description="total over all symbols; 0 = as fast as possible"
    )
    max_batch_ticks: int = Field(default=500, ge=1, le=10_000)
    symbols: tuple[SymbolSpec, ...] = Field(min_length=1)
    features: FeatureParams = FeatureParams()
