"""Schema of conf/feature_bus.yml: the source, feature windows, regime thresholds,
data-quality limits, replay and websocket settings. Every error names its key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar, Literal, get_args

from pydantic import Field, model_validator

from shared.config import ComponentConfig, ConfigError, Frozen

Source = Literal["synthetic", "websocket", "replay"]
# Overrides ``source`` of conf/feature_bus.yml (e.g. EDGEBUS_SOURCE=replay make start).
SOURCE_ENV = "EDGEBUS_SOURCE"


class SymbolSpec(Frozen):
    symbol: str = Field(min_length=1, max_length=64)
    asset_class: Literal["crypto", "stocks", "fx", "futures"] = "crypto"
    start_price: float = Field(gt=0)
    vol_bps_per_tick: float = Field(default=2.0, ge=0, le=500)
    spread_bps: float = Field(default=2.0, gt=0, le=1_000)
    mean_size: float = Field(default=5.0, gt=0)


class FeatureParams(Frozen):
    """Feature windows (durations in seconds of event time) and regime thresholds (seed
    003 §2 as quoted in issue 3).

    Every average is decayed by the event time between quotes (``ts_ns``), not by the
    number of quotes, so quotes every 80 ms and daily bars use the same definitions.
    ``volatility_pct`` is daily volatility in percent (variance per second of event time
    * 86,400); the regime thresholds below are in that unit. The defaults reproduce the
    former tick windows on the shipped synthetic market, whose symbols quote every
    80 ms of event time each (4 symbols at ``nominal_ticks_per_s`` 50): see
    docs/feature_bus.md "Windows".
    """

    # EMA spans: the weight of a quote decays as exp(-2 age / span); 0.8 s and 4 s are
    # the former 10- and 50-tick EMAs at 80 ms per symbol tick.
    ema_short_s: float = Field(default=0.8, gt=0, le=1e9)
    ema_long_s: float = Field(default=4.0, gt=0, le=1e9)
    # Half-life of the volatility estimate: the former 50 ticks at 80 ms.
    vol_halflife_s: float = Field(default=4.0, gt=0, le=1e9)
    adx_period: int = Field(default=14, ge=2, le=1_000)
    # Quotes become ADX bars of this length (high, low, close of the mids in it): two
    # symbol ticks at 80 ms, as the former 2-tick bars. Bars (open/high/low given) are
    # used as they are.
    adx_bar_s: float = Field(default=0.16, gt=0, le=1e9)
    # Normal volume: the mean over this window; 160 s = the former 2,000 ticks at 80 ms.
    volume_window_s: float = Field(default=160.0, gt=0, le=1e10)
    # Prints (docs/feature_bus.md "Prints"): the e-folding time of the order-flow
    # averages (flow_imbalance, trade_rate_per_s) and of a sweep's memory (sweep_bps);
    # 2 s and 0.8 s = 25 and 10 symbol quotes at 80 ms.
    flow_window_s: float = Field(default=2.0, gt=0, le=1e9)
    sweep_window_s: float = Field(default=0.8, gt=0, le=1e9)
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
        if self.ema_short_s >= self.ema_long_s:
            raise ValueError("ema_short_s must be smaller than ema_long_s")
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
    # Bars (open/high/low given) are never forward-filled, and a gap between bars is
    # dt > bar_gap_factor * T: a weekend is about 2 T of daily bars (T, the EWMA of
    # intervals, includes weekends), a long weekend about 3 T, so neither is a gap.
    bar_gap_factor: float = Field(default=5.0, gt=1.0, le=1_000_000)
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
    # A live feed's clock is the wall clock (a quote's event time is the exchange's
    # stamp, or its receive time): while the feed is silent or away, feature_bus's
    # watermark is now minus this, so downstream timers (risk's data-latency breaker)
    # fire without data. A quote whose exchange stamp is older than this on arrival
    # comes after that promise: published all the same, and counted as late.
    allowed_lateness_ms: float = Field(default=250.0, ge=0, le=60_000)

    @model_validator(mode="after")
    def _check(self) -> WebsocketParams:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError("url must start with ws:// or wss://")
        if not self.symbols:
            raise ValueError("symbols must name at least one exchange symbol")
        return self


class FeatureBusConfig(ComponentConfig):
    # The synthetic market's event clock is set once (a reload must not move event time).
    # Whether the market prints is fixed when it is made, too (its walks are built with
    # or without a print generator).
    RESTART_ONLY: ClassVar[tuple[str, ...]] = (
        "start_ts_ns",
        "nominal_ticks_per_s",
        "synthetic_prints",
    )

    # synthetic: the built-in market; websocket: the live feed below; replay: only what
    # arrives on md.raw (``edgebus replay``). md.raw is consumed in every mode.
    source: Source = "synthetic"
    seed: int = 7
    ticks_per_s: float = Field(
        default=50.0, ge=0, description="total over all symbols; 0 = as fast as possible"
    )
    # The synthetic market's event clock: each quote advances event time by
    # 1 / nominal_ticks_per_s (total over all symbols), whatever ``ticks_per_s`` paces
    # the wall clock at: a full-speed run is a fast-forwarded market.
    nominal_ticks_per_s: float = Field(default=50.0, gt=0, le=1e8)
    # Event time of the first synthetic quote; 0 = the wall clock when the market is
    # made (the live stack). Tests and backtests give a fixed value.
    start_ts_ns: int = Field(default=0, ge=0, le=2**62)
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
    # One aggregated print per synthetic quote (synthetic.py); off by default so the
    # shipped md.ticks and features stay what they were (docs/feature_bus.md "Prints").
    # Restart-only: a reload does not rebuild the market for it.
    synthetic_prints: bool = False
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


def with_source_override(
    cfg: FeatureBusConfig, environ: Mapping[str, str] = os.environ
) -> FeatureBusConfig:
    """``cfg`` with ``source`` replaced by $EDGEBUS_SOURCE when that is set (synthetic,
    websocket or replay; replay = no live source, only md.raw). Anything else is a
    ConfigError naming the variable."""
    value = environ.get(SOURCE_ENV, "").strip()
    if not value or value == cfg.source:
        return cfg
    if value not in get_args(Source):
        raise ConfigError(f"{SOURCE_ENV}={value!r}: must be one of {', '.join(get_args(Source))}")
    return cfg.model_copy(update={"source": value})
