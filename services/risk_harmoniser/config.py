"""Schema of conf/risk_params.yml: a preset (seed 003: conservative / balanced /
aggressive) deep-merged under the file's own values, so any value is overridable.

Sections: ``blend`` (seed 004), ``costs`` (seed 003 §4), ``sizing`` (seed 003 §5,
seed 004), ``limits``, ``var``, ``pretrade`` (seed 000 §3, seed 001 §1) and
``breakers`` (seed 003 §6, seed 001 §2, seed 004). Errors name the key
(e.g. ``limits.name_cap_pct.crypto: Input should be less than or equal to 100``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

# risk prices on execution's fee schedule
from services.execution.config import VenueFees, log, renamed_key, schedule_for
from services.risk_harmoniser.profiles import DualModeConfig
from shared.config import ComponentConfig, Frozen

AssetClass = Literal["crypto", "stocks"]
Preset = Literal["conservative", "balanced", "aggressive"]


class PerClass(Frozen):
    """One value per asset class."""

    crypto: float = Field(ge=0)
    stocks: float = Field(ge=0)

    def of(self, asset_class: str) -> float:
        return self.stocks if asset_class == "stocks" else self.crypto


class SymbolInfo(Frozen):
    asset_class: AssetClass = "crypto"
    sector: str = ""  # "" = the asset class


class BlendParams(Frozen):
    half_life_s: float = Field(default=5.0, gt=0, description="staleness decay of a signal")
    max_age_s: float = Field(default=30.0, gt=0, description="older signals are dropped")
    noise_bps: float = Field(default=7.0, gt=0, description="sd of a confidence-1 signal")
    prior_sd_bps: float = Field(default=10.0, gt=0, description="sd of the zero-edge prior")


class CostParams(Frozen):
    """Seed 003 §4's cost model with seed 001 §6's impact (the one model of
    services/execution/impact.py) and seed 001 §1's slippage refusal; formulas and the
    reason for every number that is not a seed's: docs/risk_harmoniser.md "Cost model"."""

    venue: str = "paper"
    venues: dict[str, VenueFees] = Field(default_factory=lambda: {"paper": VenueFees()})
    liquidity: Literal["maker", "taker"] = "taker"
    impact_coeff: float = Field(default=0.15, ge=0, le=100, description="seed 001 §6")
    impact_fallback_bps: float = Field(default=5.0, ge=0, le=10_000, description="seed 003 §4")
    funding_rate_bps_per_8h: PerClass = PerClass(crypto=1.0, stocks=0.0)
    latency_ms: float = Field(default=5.0, ge=0)
    latency_bps_per_10ms: float = Field(default=0.1, ge=0, le=100, description="seed 003 §4")
    round_trip: bool = Field(default=True, description="charge the exit too when opening")
    safety_margin_bps: float = Field(default=3.0, ge=0, description="seed 003 §4")
    max_slippage_bps: float = Field(default=20.0, gt=0, description="seed 001 §1")
    max_worst_case_bps: float = Field(default=30.0, gt=0)
    impact_sd_pct: float = Field(default=50.0, ge=0, le=1_000)
    confidence_z: float = Field(default=1.645, ge=0, le=10)
    worst_case_z: float = Field(default=2.326, ge=0, le=10)
    exit_edge_bps: float = Field(default=2.0, ge=0, description="close when edge turns this far")
    default_hold_s: float = Field(default=60.0, gt=0, description="when a horizon is unparsable")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        data = renamed_key(data, "impact_coeff_bps", "impact_coeff", "costs.")
        if isinstance(data, dict) and "participation_window_s" in data:
            data = {k: v for k, v in data.items() if k != "participation_window_s"}
            log.warning(
                "costs.participation_window_s is deprecated and ignored: the impact"
                " is on the day's volume now (seed 001 §6)"
            )
        if isinstance(data, dict) and "funding_bps_per_hour" in data:
            data = dict(data)
            old = data.pop("funding_bps_per_hour")
            per_8h = {k: 8.0 * float(v) for k, v in old.items()} if isinstance(old, dict) else old
            log.warning(
                "costs.funding_bps_per_hour is deprecated: write"
                " costs.funding_rate_bps_per_8h (seed 003 §4), = 8 x; read as %r",
                per_8h,
            )
            data["funding_rate_bps_per_8h"] = per_8h
        return data

    @model_validator(mode="after")
    def _venue_known(self) -> CostParams:
        if self.venue not in self.venues:
            raise ValueError(f"venue {self.venue!r} has no entry in costs.venues")
        return self

    def fees_for(self, asset_class: str) -> VenueFees:
        """The venue's schedule for the class, as execution looks it up (``schedule_for``:
        '<venue>:<asset class>', '<venue>', '<asset class>')."""
        return schedule_for(self.venues, self.venue, asset_class) or self.venues[self.venue]

    @property
    def funding_bps_per_hour(self) -> PerClass:
        """Seed 003 §4: funding = rate_bps * hours_held / 8, as a rate per hour."""
        f = self.funding_rate_bps_per_8h
        return PerClass(crypto=f.crypto / 8.0, stocks=f.stocks / 8.0)


class SizingParams(Frozen):
    """Seed 003 §5: base = E * target_vol_pct / sigma_daily, size = base * kelly_fraction
    * Kelly (docs/risk_harmoniser.md "Sizing"); the rest is ours, not the seed's."""

    target_vol_pct: float = Field(
        default=0.5, gt=0, le=100, description="per-trade risk: daily 1-sigma, of equity"
    )
    kelly_fraction: float = Field(default=0.25, gt=0, le=1, description="seed: Kelly / 4")
    kelly_prior_win_rate: float = Field(default=0.55, gt=0, lt=1)
    kelly_prior_win_loss: float = Field(default=1.0, gt=0, description="avg win / avg loss")
    kelly_prior_trades: int = Field(default=20, ge=1)
    full_size_edge_bps: float = Field(default=10.0, gt=0)
    min_order_usd: float = Field(default=2_000.0, ge=0)
    rebalance_band_pct: float = Field(default=25.0, ge=0, le=100)


class LimitParams(Frozen):
    """The balanced preset's numbers (seed 003 "Risk Engine Presets"; PRESETS)."""

    name_cap_pct: PerClass = PerClass(crypto=25.0, stocks=25.0)
    leverage: PerClass = PerClass(crypto=2.0, stocks=2.5)
    sector_cap_pct: float = Field(default=50.0, gt=0)
    gross_cap_pct: float = Field(default=250.0, gt=0, description="all classes together")
    single_trade_risk_pct: float = Field(default=0.5, gt=0, le=100)
    daily_loss_stop_pct: float = Field(default=2.5, gt=0, le=100)
    var_limit_pct: float = Field(default=2.0, gt=0, le=100)
    var_z: float = Field(default=1.645, gt=0, le=10, description="95 % one-sided")

    @model_validator(mode="after")
    def _leverage_can_bind(self) -> LimitParams:
        # a class's leverage above the gross cap could never bind (the gross cap would)
        for cls in ("crypto", "stocks"):
            if getattr(self.leverage, cls) * 100.0 > self.gross_cap_pct:
                raise ValueError(
                    f"leverage.{cls} must be <= gross_cap_pct / 100, else it can never bind"
                )
        return self


class VarParams(Frozen):
    """The EWMA covariance behind VaR (docs/risk_harmoniser.md "VaR")."""

    sample_ms: float = Field(
        default=300_000.0, gt=0, description="sampling grid of event time (5 min)"
    )
    ewma_lambda: float = Field(
        default=0.94, gt=0, lt=1, description="decay per day of samples (RiskMetrics)"
    )
    horizon_s: float = Field(default=86_400.0, gt=0)
    prior_daily_vol_pct: PerClass = PerClass(crypto=5.0, stocks=2.0)
    prior_correlation: float = Field(default=0.3, ge=0, lt=1)
    clip_sigmas: float = Field(
        default=4.0, ge=0, description="returns winsorised at this many sigma; 0 = off"
    )


class PretradeParams(Frozen):
    max_quote_age_ms: float = Field(default=2_000.0, gt=0)
    price_band_bps: float = Field(default=50.0, gt=0)
    max_order_usd: float = Field(default=100_000.0, gt=0)
    max_orders_per_s: float = Field(default=2.0, gt=0)
    symbol_cooldown_ms: float = Field(default=2_000.0, ge=0)
    max_signal_lag_ms: float = Field(default=5_000.0, gt=0)


class BreakerParams(Frozen):
    daily_drawdown_pct: float = Field(default=3.0, gt=0, le=100)
    loss_streak: int = Field(default=3, ge=1)
    loss_streak_size_mult: float = Field(default=0.5, gt=0, le=1)
    vol_percentile: float = Field(default=95.0, gt=0, lt=100)
    vol_history: int = Field(default=300, ge=10)
    vol_min_samples: int = Field(default=30, ge=2)
    defence_size_mult: float = Field(default=0.5, gt=0, le=1)
    defence_extra_margin_bps: float = Field(default=2.0, ge=0)
    halt_var_pct: float = Field(default=2.5, gt=0, le=100)
    # The rest of seed 001 §2 (CircuitBreakerConfig) and the fifth level:
    weekly_loss_pct: float = Field(
        default=7.0, gt=0, le=100, description="week (Mon 00:00 UTC) loss -> no new positions"
    )
    max_drawdown_pct: float = Field(
        default=10.0, gt=0, le=100, description="drawdown from peak equity -> REDUCE_RISK"
    )
    drawdown_keep_pct: float = Field(
        default=50.0, ge=0, le=100, description="REDUCE_RISK cuts each position to this"
    )
    drawdown_resume_pct: float = Field(
        default=5.0, ge=0, le=100, description="REDUCE_RISK lifts below this drawdown"
    )
    drawdown_reset_s: float = Field(
        default=432_000.0, gt=0, description="or after this long: the peak rebases"
    )
    max_data_age_s: float = Field(
        default=5.0, gt=0, description="newest tick older than this -> no new positions"
    )
    max_consecutive_failures: int = Field(
        default=5, ge=1, description="failed inputs in a row -> HALT_ALL_TRADING"
    )
    emergency_var_mult: float = Field(
        default=2.0, ge=1, description="VaR above this x halt_var_pct -> EMERGENCY_CLOSE"
    )
    emergency_on_panic: bool = Field(
        default=False, description="a signal in the PANIC regime -> EMERGENCY_CLOSE"
    )


class ExitParams(Frozen):
    """Per-position exits (seed 002's stop-losses; the rest has no seed number: docs).

    A long position at average price A with mark m exits when
    (m - A) / A * 1e4 <= -stop_bps or >= take_profit_bps (mirrored for a short), where
    stop_bps = max(stop_loss_bps, stop_loss_vol_mult * sigma_daily * 1e4); and when it has
    been held max_hold_horizons x its horizon (max_hold_s per horizon overrides)."""

    enabled: bool = True
    stop_loss_bps: PerClass = PerClass(crypto=200.0, stocks=200.0)
    stop_loss_vol_mult: float = Field(default=0.0, ge=0, description="0: bps only")
    take_profit_bps: PerClass = PerClass(crypto=400.0, stocks=400.0)
    take_profit_vol_mult: float = Field(default=0.0, ge=0, description="0: bps only")
    max_hold_horizons: float = Field(default=4.0, gt=0, description="time stop, in horizons")
    max_hold_s: dict[str, float] = Field(
        default_factory=dict, description="per horizon ('1m', '1d'): the time stop in s"
    )


# Seed 003 "Risk Engine Presets": per-trade risk (sizing.target_vol_pct and
# limits.single_trade_risk_pct), daily loss stop (limits.daily_loss_stop_pct, and the
# daily drawdown breaker that enforces it), max leverage (limits.leverage.crypto); every
# preset: single coin 25 %, sector 50 %. The other numbers have no seed number: their
# reasons are in docs/risk_harmoniser.md "Presets".
_EVERY_PRESET: dict[str, Any] = {
    "name_cap_pct": {"crypto": 25.0, "stocks": 25.0},
    "sector_cap_pct": 50.0,
}
PRESETS: dict[str, dict[str, Any]] = {
    "conservative": {
        "costs": {"safety_margin_bps": 4.0},
        "sizing": {"target_vol_pct": 0.25},
        "limits": {
            **_EVERY_PRESET,
            "leverage": {"crypto": 1.5, "stocks": 2.0},
            "gross_cap_pct": 200.0,
            "single_trade_risk_pct": 0.25,
            "daily_loss_stop_pct": 1.5,
            "var_limit_pct": 1.0,
        },
        "breakers": {"daily_drawdown_pct": 1.5, "halt_var_pct": 1.5},
    },
    "balanced": {  # the field defaults of SizingParams and LimitParams
        "sizing": {"target_vol_pct": 0.5},
        "limits": {
            **_EVERY_PRESET,
            "leverage": {"crypto": 2.0, "stocks": 2.5},
            "gross_cap_pct": 250.0,
            "single_trade_risk_pct": 0.5,
            "daily_loss_stop_pct": 2.5,
        },
        "breakers": {"daily_drawdown_pct": 2.5},
    },
    "aggressive": {
        "costs": {"safety_margin_bps": 1.0},
        "sizing": {"target_vol_pct": 1.0},
        "limits": {
            **_EVERY_PRESET,
            "leverage": {"crypto": 3.0, "stocks": 4.0},
            "gross_cap_pct": 400.0,
            "single_trade_risk_pct": 1.0,
            "daily_loss_stop_pct": 3.5,
            "var_limit_pct": 3.0,
        },
        "breakers": {"daily_drawdown_pct": 3.5, "halt_var_pct": 3.5},
    },
}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` wins; nested mappings merge key by key."""
    out = dict(base)
    for key, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = val
    return out


def _section_defaults() -> dict[str, Any]:
    sections = {
        "blend": BlendParams,
        "costs": CostParams,
        "sizing": SizingParams,
        "limits": LimitParams,
        "var": VarParams,
        "pretrade": PretradeParams,
        "breakers": BreakerParams,
        "exits": ExitParams,
    }
    return {name: cls().model_dump() for name, cls in sections.items()}


class ConfidenceLevels(Frozen):
    """Seed 001 §5's confidence levels, on p = (1 + confidence) / 2 of the signal (the
    calibrated confidence model_router sends: docs/calibration.md): VERY_LOW < 40 % and
    LOW 40-55 % open nothing (no trade; paper only), MEDIUM 55-70 % small, HIGH 70-85 %
    normal, VERY_HIGH >= 85 % larger. The level is on every decision."""

    enabled: bool = True
    very_low: float = Field(default=0.0, ge=0, le=2, description="size multiplier")
    low: float = Field(default=0.0, ge=0, le=2, description="paper only: 0 live")
    medium: float = Field(default=0.5, ge=0, le=2, description="small size")
    high: float = Field(default=1.0, ge=0, le=2, description="normal size")
    very_high: float = Field(default=1.25, ge=0, le=2, description="larger size")


class ConformalGate(Frozen):
    """Seed 002's runner gate: a new position only when the pessimistic end of the
    consensus edge's conformal interval (model_router, docs/conformal.md) beats the
    costs plus ``cost_buffer_bps``. Off by default: it is the runner book's gate, and
    the desk has one book until the dual-mode books come (issue 19)."""

    enabled: bool = False
    cost_buffer_bps: float = Field(default=8.0, ge=0, description="seed 002 runner: 8 bps")


class RiskParams(ComponentConfig):
    preset: Preset = "balanced"
    equity_usd: float = Field(default=1_000_000.0, gt=0, description="starting capital")
    symbols: dict[str, SymbolInfo] = Field(default_factory=dict)
    blend: BlendParams = BlendParams()
    costs: CostParams = CostParams()
    sizing: SizingParams = SizingParams()
    limits: LimitParams = LimitParams()
    var: VarParams = VarParams()
    pretrade: PretradeParams = PretradeParams()
    breakers: BreakerParams = BreakerParams()
    exits: ExitParams = ExitParams()
    confidence_levels: ConfidenceLevels = ConfidenceLevels()
    conformal_gate: ConformalGate = ConformalGate()
    dual_mode: DualModeConfig = DualModeConfig()

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "balanced")
        if preset not in PRESETS:
            return data  # the field validator names `preset` and the allowed values
        # Field defaults, then the preset, then the file: a partial section (one asset
        # class of a per-class value, say) keeps the rest of its values.
        return deep_merge(deep_merge(_section_defaults(), PRESETS[preset]), data)

    @model_validator(mode="after")
    def _var_halt_above_limit(self) -> RiskParams:
        if self.breakers.halt_var_pct < self.limits.var_limit_pct:
            raise ValueError("breakers.halt_var_pct must be >= limits.var_limit_pct")
        return self

    def symbol_info(self, symbol: str) -> SymbolInfo:
        """Configured, else by name: ``BASE-QUOTE`` pairs are crypto, the rest stocks."""
        info = self.symbols.get(symbol)
        if info is not None:
            return info
        return SymbolInfo(asset_class="crypto" if "-" in symbol else "stocks")

    def sector(self, symbol: str) -> str:
        info = self.symbol_info(symbol)
        return info.sector or info.asset_class
