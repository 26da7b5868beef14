"""Schema of conf/model_router_rules.yml: which models speak for which instruments.

Every error names its key: an unknown model (``rules.0.models.1.id``), a bad pattern
(``rules.2.pattern``), a negative weight (``rules.0.models.0.weight``), an unknown
regime (``regimes``). Everything the router compiles from a config is checked here, so
a config that validates always applies (the parameter server validates before storing,
and every service validates again before applying).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from services.model_router.models import ALL_REGIMES, horizon_ns
from services.model_router.registry import CATALOGUE
from shared.config import ComponentConfig, Frozen

ASSET_CLASSES: tuple[str, ...] = ("crypto", "stocks", "fx", "futures")  # as in feature_bus
CLASS_PREFIX = "class:"
_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9._/:\-*?\[\]!]+$")
_GLOB_CHARS = frozenset("*?[")


def _known(model_id: str) -> str:
    if model_id not in CATALOGUE:
        raise ValueError(f"unknown model {model_id!r} (known: {', '.join(sorted(CATALOGUE))})")
    return model_id


def pattern_kind(pattern: str) -> str:
    """'class', 'glob' or 'exact'; ValueError saying what is wrong with a bad pattern."""
    if pattern.startswith(CLASS_PREFIX):
        name = pattern[len(CLASS_PREFIX) :]
        if name not in ASSET_CLASSES:
            raise ValueError(
                f"bad pattern {pattern!r}: unknown asset class {name!r} "
                f"(known: {', '.join(ASSET_CLASSES)})"
            )
        return "class"
    if len(pattern) > 64 or not _PATTERN_CHARS.match(pattern):
        raise ValueError(
            f"bad pattern {pattern!r}: use a symbol, a glob (* ? [..]) or class:<asset class>"
        )
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                raise ValueError(f"bad pattern {pattern!r}: nested '['")
            depth = 1
        elif ch == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"bad pattern {pattern!r}: unbalanced '['")
    if "[]" in pattern or "[!]" in pattern:
        raise ValueError(f"bad pattern {pattern!r}: empty character set")
    return "glob" if _GLOB_CHARS & set(pattern) else "exact"


class ModelWeight(Frozen):
    """One model of a rule. ``shadow``: runs and publishes ``shadow=1`` signals, never
    votes. ``canary``: votes with ``promotion.canary_fraction`` of its weight (the stage
    between shadow and live, docs/validation.md). A live model votes only once it has
    passed validation (``validation.results``), unless ``trade_unvalidated`` says so
    explicitly; until then it runs as a shadow."""

    id: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0, le=1_000)
    shadow: bool = False
    canary: bool = False
    canary_since_ns: int = Field(default=0, ge=0, description="event time the canary began")
    trade_unvalidated: bool = False

    _known_id = field_validator("id")(_known)

    @model_validator(mode="after")
    def _stage(self) -> ModelWeight:
        if self.shadow and self.canary:
            raise ValueError("canary: a model is either shadow or canary, not both")
        return self


class RoutingRule(Frozen):
    """Instrument pattern and horizon -> ordered models with weights.

    Patterns: ``BTC-USD`` (exact), ``*-USD`` (glob: * ? [..] [!..]) or ``class:crypto``
    (asset class, through the top-level ``asset_classes`` map). For a symbol and a
    horizon the most specific matching rule wins (exact, then class, then glob); among
    equals the first in the file.
    """

    pattern: str = Field(min_length=1)
    horizon: str = Field(default="1m", pattern=r"^\d+(ms|s|m|h|d)$")
    models: tuple[ModelWeight, ...] = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        pattern_kind(pattern)
        return pattern

    @field_validator("horizon")
    @classmethod
    def _horizon(cls, horizon: str) -> str:
        if horizon_ns(horizon) <= 0:
            raise ValueError("horizon must be longer than 0")
        return horizon

    @model_validator(mode="after")
    def _models(self) -> RoutingRule:
        seen: set[str] = set()
        for i, mw in enumerate(self.models):
            if mw.id in seen:
                raise ValueError(f"models.{i}.id: model {mw.id!r} listed twice")
            seen.add(mw.id)
            served = CATALOGUE[mw.id].horizons
            if served is not None and self.horizon not in served:
                raise ValueError(
                    f"models.{i}.id: model {mw.id!r} does not serve horizon {self.horizon}"
                )
        return self


class ConsensusParams(Frozen):
    """Consensus and switch-log knobs (seed 003 §1 as quoted in issue 4)."""

    half_life_s: float = Field(default=300.0, gt=0, description="reliability half-life of a vote")
    k: float = Field(default=0.75, ge=0, description="gate: |S| > k * rolling_std(S) (seed 003 §1)")
    window: int = Field(default=100, ge=2, le=100_000, description="rolling_std window (scores)")
    min_samples: int = Field(default=20, ge=2, description="scores before the gate can open")
    penalty_lambda: float = Field(default=1.0, ge=0, description="pull towards base weights")
    corr_window: int = Field(default=100, ge=10, le=10_000, description="votes kept for C")
    switch_margin: float = Field(
        default=1.5, ge=1.0, description="a challenger must carry this times the leader's share"
    )
    switch_half_life_s: float = Field(
        default=30.0, gt=0, description="smoothing of the shares that decide the leader"
    )


class ValidationResult(Frozen):
    """A model's latest validation (written by the daily job, docs/validation.md):
    permutation test of its paper track record and walk-forward of its daily PnL."""

    p_value_sharpe: float = Field(ge=0, le=1)
    walk_forward_robust: bool
    passed: bool
    n_periods: int = Field(default=0, ge=0)
    at_ns: int = Field(default=0, ge=0, description="event time of the validation")


class WalkForwardWindows(Frozen):
    """The daily walk-forward of each model's daily PnL, in days (seed 003 §3: 120 /
    purge 5 / 30 by default; seed 000's preset is 180 / 0 / 30)."""

    train_days: int = Field(default=120, ge=1)
    test_days: int = Field(default=30, ge=1)
    step_days: int = Field(default=30, ge=1)
    purge_days: int = Field(default=5, ge=0)


class ValidationGate(Frozen):
    alpha: float = Field(default=0.01, gt=0, lt=1, description="seed 000: the 99th percentile")
    n_permutations: int = Field(default=1_000, ge=100, le=100_000, description="seed 000: 1,000+")
    seed: int = Field(default=0, description="the permutations' random seed")
    walk_forward: WalkForwardWindows = WalkForwardWindows()
    required: bool = Field(
        default=True,
        description="a live model without a passing result votes only with trade_unvalidated",
    )
    trust_weighting: bool = Field(
        default=True,
        description="vote weight x (0.6 trust + 0.4 (1 - p)) where a model has a p-value",
    )
    results: dict[str, ValidationResult] = Field(default_factory=dict)

    @field_validator("results")
    @classmethod
    def _models(cls, results: dict[str, Any]) -> dict[str, Any]:
        for model_id in results:
            try:
                _known(model_id)
            except ValueError as exc:
                raise ValueError(f"results.{model_id}: {exc}") from None
        return results

    def passed(self, model_id: str) -> bool:
        r = self.results.get(model_id)
        return r is not None and r.passed


class PromotionConfig(Frozen):
    """Champion against challenger (seed 002, seed 003 §9; docs/validation.md)."""

    enabled: bool = True
    min_days_better: int = Field(default=5, ge=1, description="seed 002: 5 consecutive days")
    min_excess_bps_per_day: float = Field(default=10.0, description="seed 002: +10 bps a day")
    es_level: float = Field(default=0.95, gt=0.5, lt=1.0, description="seed 002: ES(95 %)")
    max_p_value: float = Field(default=0.05, gt=0, lt=1, description="seed 002/003: p < 0.05")
    min_trades: int = Field(default=50, ge=1, description="seed 002: 50 trades")
    test: str = Field(default="t", pattern="^(t|bootstrap)$")
    canary_fraction: float = Field(default=0.1, gt=0, le=1, description="of the full weight")
    canary_days: int = Field(default=5, ge=1)
    window_days: int = Field(default=30, ge=5, le=400, description="days compared")
    track_fee_bps: float = Field(
        default=4.0, ge=0, le=100, description="paper books' fee: execution's taker fee"
    )
    review_at_utc: str = Field(
        default="02:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="seed 003: 02:00 UTC"
    )
    report_at_utc: str = Field(
        default="23:55", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="seed 003: 23:55 UTC"
    )

    @staticmethod
    def seconds_of(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 3600 + int(m) * 60


class CalibrationConfig(Frozen):
    """Confidence calibration (seed 001 §5, docs/calibration.md): an online bucket
    calibrator per model and regime, fitted on resolved predictions; the consensus
    signal's confidence is the calibrated one once its regime has ``min_outcomes``."""

    enabled: bool = True
    n_buckets: int = Field(default=10, ge=2, le=100, description="seed 001 §5: 10 buckets")
    min_outcomes: int = Field(default=200, ge=1, description="outcomes before it is used")
    half_life: float | None = Field(
        default=5_000, gt=0, description="outcomes; older ones weigh less (None: all alike)"
    )


class ConformalConfig(Frozen):
    """Split-conformal intervals of the consensus edge (seed 002, docs/conformal.md): the
    last ``window`` resolved calls of each horizon and regime give |realised - predicted|
    scores; the interval covers the realised edge with probability >= 1 - alpha."""

    enabled: bool = True
    alpha: float = Field(default=0.1, gt=0, lt=1, description="miscoverage: 90 % intervals")
    window: int = Field(default=500, ge=20, le=100_000, description="resolved calls kept")


class RouterRules(ComponentConfig):
    # symbol -> asset class, for class:<name> patterns.
    asset_classes: dict[str, str] = Field(default_factory=dict)
    # regime -> models approved to vote in it (seed 003 §2); a regime left out uses each
    # model's own default approvals.
    regimes: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    consensus: ConsensusParams = ConsensusParams()
    # Conflation in event time: at most one decision per symbol per this many ms of
    # event time (a features entry within it of the symbol's last decision is observed,
    # not decided on). 0: decide on every features entry.
    decide_interval_ms: float = Field(default=0.0, ge=0, le=3_600_000)
    rules: tuple[RoutingRule, ...] = Field(min_length=1)
    validation: ValidationGate = ValidationGate()
    promotion: PromotionConfig = PromotionConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    conformal: ConformalConfig = ConformalConfig()

    @field_validator("asset_classes")
    @classmethod
    def _classes(cls, classes: dict[str, str]) -> dict[str, str]:
        for symbol, name in classes.items():
            if name not in ASSET_CLASSES:
                raise ValueError(
                    f"asset_classes.{symbol}: unknown asset class {name!r} "
                    f"(known: {', '.join(ASSET_CLASSES)})"
                )
        return classes

    @field_validator("regimes")
    @classmethod
    def _regimes(cls, regimes: dict[str, Any]) -> dict[str, Any]:
        for regime, models in regimes.items():
            if regime not in ALL_REGIMES:
                raise ValueError(
                    f"regimes.{regime}: unknown regime (known: {', '.join(sorted(ALL_REGIMES))})"
                )
            for i, model_id in enumerate(models):
                try:
                    _known(model_id)
                except ValueError as exc:
                    raise ValueError(f"regimes.{regime}.{i}: {exc}") from None
        return regimes

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: tuple[RoutingRule, ...]) -> tuple[RoutingRule, ...]:
        first: dict[tuple[str, str], int] = {}
        for i, rule in enumerate(rules):
            key = (rule.pattern, rule.horizon)
            if key in first:
                raise ValueError(
                    f"rules.{i}: same pattern {rule.pattern!r} and horizon {rule.horizon} "
                    f"as rules.{first[key]}"
                )
            first[key] = i
        return rules
