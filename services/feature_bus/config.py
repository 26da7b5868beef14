"""Schema of conf/feature_bus.yml: the source, feature windows, regime thresholds,
data-quality limits, replay and websocket settings. Every error names its key."""

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
    """Feature windows (in ticks) and regime thresholds (seed 003 §2 as quoted in issue 3).

    ``volatility_pct`` is the EWMA realized volatility of mid log-returns scaled by the
    square-root-of-time rule to ``vol_horizon_ticks`` ticks (default 1440: one day of
    1-minute bars), in percent. The regime thresholds below are in that unit.
    """

    ema_short_ticks: int = Field(default=10, ge=1)
    ema_long_ticks: int = Field(default=50, ge=2)
    vol_halflife_ticks: int = Field(default=50, ge=1)
    vol_horizon_ticks: int = Field(default=1440, ge=1)
    adx_period: int = Field(default=14, ge=2, le=1_000)
    adx_bar_ticks: int = Field(default=2, ge=1, le=10_000)
    volume_window_ticks: int = Field(default=500, ge=2, le=100_000)
    # Regimes.
    trend_adx_min: float = Field(default=25.0, ge=0, le=100)
    range_adx_max: float = Field(default=20.0, ge=0, le=100)
    range_vol_min_pct: float = Field(default=1.0, ge=0)
    range_vol_max_pct: float = Field(default=4.0, gt=0)
    panic_vol_pct: float = Field(default=5.0, gt=0)
    panic_volume_ratio: float = Field(default=1.5, gt=0)
    illiquid_volume_ratio: float = Field(default=0.3, ge=0)
    illiquid_spread_bps: float = Field(default=50.0, gt=0)

    @model_validator(mode="after")
    def _windows(self) -> FeatureParams:
        if self.ema_short_ticks >= self.ema_long_ticks:
            raise ValueError("ema_short_ticks must be smaller than ema_long_ticks")
        if self.range_adx_max > self.trend_adx_min:
            raise ValueError("range_adx_max must not exceed trend_adx_min")
        if self.range_vol_min_pct >= self.range_vol_max_pct:
            raise ValueError("range_vol_min_pct must be smaller than range_vol_max_pct")
        return self


class QualityParams(Frozen):
    """Data-quality limits (seed 001 §4 and seed 003 "Data governance", as quoted in issue 3)."""

    stale_ms: float = Field(default=2_000.0, gt=0, description="receive time - exchange time")
    max_price_jump_pct: float = Field(default=2.0, gt=0)
    gap_ms: float = Field(default=1_000.0, ge=0, description="0 disables gap detection")
    gap_factor: float = Field(default=1.5, gt=1.0, le=1_000)
    ffill_max_intervals: int = Field(default=5, ge=0, le=1_000)
    score_halflife_quotes: int = Field(default=200, ge=1)


class ReplayParams(Frozen):
    bar_spread_bps: float = Field(default=2.0, gt=0, le=1_000)
    chunk_rows: int = Field(default=500, ge=1, le=10_000)
    max_lag_entries: int = Field(default=20_000, ge=100)
    stall_timeout_s: float = Field(default=30.0, gt=0)
    max_reported_rows: int = Field(default=50, ge=0)


class WebsocketParams(Frozen):
    """Binance book ticker (level 1)."""

    url: str = "wss://stream.binance.com:9443/ws"
    # exchange symbol (lower case) -> edgebus symbol
    symbols: dict[str, str] = Field(default_factory=lambda: {"btcusdt": "BTC-USDT"})
    stale_s: float = Field(default=10.0, gt=0)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    max_batch_quotes: int = Field(default=200, ge=1)

    @model_validator(mode="after")
    def _check(self) -> WebsocketParams:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError("url must start with ws:// or wss://")
        if not self.symbols:
            raise ValueError("symbols must name at least one exchange symbol")
        return self


class FeatureBusConfig(ComponentConfig):
    # synthetic: the built-in market; websocket: the live feed below; replay: only what
    # arrives on md.raw (``edgebus replay``). md.raw is consumed in every mode.
    source: Literal["synthetic", "websocket", "replay"] = "synthetic"
    seed: int = 7
    ticks_per_s: float = Field(
        default=50.0, ge=0, description="total over all symbols; 0 = as fast as possible"
    )
    max_batch_ticks: int = Field(default=500, ge=1, le=10_000)
    max_downstream_lag: int = Field(
        default=5_000,
        ge=0,
        description="the synthetic source waits while any consumer group on md.ticks, "
        "features, signals or orders lags more than this (0 = never wait)",
    )
    regime_ticks: int = Field(
        default=300, ge=10, description="mean length of a synthetic regime, per symbol"
    )
    symbols: tuple[SymbolSpec, ...] = Field(min_length=1)
    features: FeatureParams = FeatureParams()
    quality: QualityParams = QualityParams()
    replay: ReplayParams = ReplayParams()
    websocket: WebsocketParams = WebsocketParams()

    @model_validator(mode="after")
    def _bounded(self) -> FeatureBusConfig:
        if self.max_downstream_lag >= self.bus.maxlen:
            raise ValueError(
                "max_downstream_lag must be below bus.maxlen, or ticks are trimmed unread"
            )
        if self.replay.max_lag_entries >= self.bus.maxlen:
            raise ValueError(
                "replay.max_lag_entries must be below bus.maxlen, or md.raw is trimmed unread"
            )
        return self
