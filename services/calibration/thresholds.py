"""Ensemble uncertainty band, confidence levels and the dynamic confidence threshold (seed 001 §5).

Seed 001 §5 ("Confidence Calibration": "only 70%+ confidence threshold - meaning 30%+ could
be wrong") gives a prediction range from the ensemble's predictions, five confidence levels
and a ``DynamicThresholdManager(base_threshold=0.70)`` moved by regime, volatility and recent
accuracy. Edges are in basis points, confidences are calibrated probabilities in [0, 1],
volatility is feature_bus's ``volatility_pct`` (daily volatility in percent).

Ensemble band. With engine edges e_i (bps) and weights w_i >= 0 (sum > 0), W = sum w_i:

    mean   = sum w_i e_i / W
    spread = sqrt(sum w_i (e_i - mean)^2 / W)      (weighted population std, ddof 0)
    low, high = mean -+ z * spread                 (z = 1.645: 90 % two-sided if normal)

i.e. ``np.average(e, weights=w)`` and ``sqrt(np.cov(e, aweights=w, ddof=0))``. The band is a
heuristic (engines agreeing is not a guarantee); ``conformal.AdaptiveConformal`` with sigma =
spread turns it into an interval with a coverage guarantee.

Confidence levels (seed 001 §5 table, lower bound inclusive):

    VERY_LOW  c < 0.40          do not trade
    LOW       0.40 <= c < 0.55  paper trade only
    MEDIUM    0.55 <= c < 0.70  small size
    HIGH      0.70 <= c < 0.85  normal size
    VERY_HIGH c >= 0.85         can increase size

Dynamic threshold (the seed names the inputs and the base; offsets and slopes are ours):

    t = clip(base + regime_offset[regime]
             + clip(vol_slope * (volatility_pct / vol_ref_pct - 1), vol_term_min, vol_term_max)
             + clip(accuracy_slope * (target_accuracy - recent_accuracy), acc_term_min, acc_term_max),
             floor, ceiling)

(the accuracy term is 0 without a recent accuracy). A signal passes when its calibrated
confidence >= t. t is non-decreasing in volatility and non-increasing in recent accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

import numpy as np

DEFAULT_Z = 1.645  # two-sided 90 % normal band: Phi^-1(0.95)


def ensemble_interval(
    edges_bps: Sequence[float], weights: Sequence[float], z: float = DEFAULT_Z
) -> tuple[float, float, float, float]:
    """(mean, low, high, spread_bps) of the engines' edges: weighted mean -+ z * weighted std."""
    e = np.asarray(edges_bps, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64).ravel()
    if e.size == 0 or e.shape != w.shape:
        raise ValueError(f"need as many weights as edges, at least one: {e.size} and {w.size}")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(w))):
        raise ValueError("edges and weights must be finite")
    if np.any(w < 0.0) or float(w.sum()) <= 0.0:
        raise ValueError("weights must be >= 0 with a positive sum")
    if not (math.isfinite(z) and z >= 0.0):
        raise ValueError(f"z must be finite and >= 0, not {z!r}")
    p = w / w.sum()
    mean = float(p @ e)
    spread = math.sqrt(max(float(p @ (e - mean) ** 2), 0.0))
    return mean, mean - z * spread, mean + z * spread, spread


class ConfidenceLevel(IntEnum):
    """Seed 001 §5's levels; ordered, so ``level >= ConfidenceLevel.MEDIUM`` reads as it says."""

    VERY_LOW = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    VERY_HIGH = 4


# lower bounds of LOW, MEDIUM, HIGH, VERY_HIGH (seed 001 §5: 40 %, 55 %, 70 %, 85 %)
LEVEL_LOWER_BOUNDS: tuple[float, float, float, float] = (0.40, 0.55, 0.70, 0.85)

LEVEL_ACTIONS: Mapping[ConfidenceLevel, str] = MappingProxyType(
    {
        ConfidenceLevel.VERY_LOW: "do not trade",
        ConfidenceLevel.LOW: "paper trade only",
        ConfidenceLevel.MEDIUM: "small size",
        ConfidenceLevel.HIGH: "normal size",
        ConfidenceLevel.VERY_HIGH: "can increase size",
    }
)


def level_of(calibrated_confidence: float) -> ConfidenceLevel:
    """The seed's level of a calibrated confidence in [0, 1]; each lower bound is inclusive."""
    c = float(calibrated_confidence)
    if not (0.0 <= c <= 1.0):  # also rejects NaN
        raise ValueError(f"calibrated confidence must be in [0, 1], not {calibrated_confidence!r}")
    level = ConfidenceLevel.VERY_LOW
    for bound, above in zip(LEVEL_LOWER_BOUNDS, list(ConfidenceLevel)[1:], strict=True):
        if c >= bound:
            level = above
    return level


@dataclass(frozen=True)
class SizeMultipliers:
    """Live position-size multiplier per level (1.0 = the sizing model's normal size).

    The seed gives the actions, not the numbers: VERY_LOW trades nothing and LOW is paper
    only, so both size 0 live; MEDIUM "small" is half; HIGH normal; VERY_HIGH "can increase"
    by a quarter, a modest step because calibration is least certain at the top bucket."""

    very_low: float = 0.0
    low: float = 0.0
    medium: float = 0.5
    high: float = 1.0
    very_high: float = 1.25

    def __post_init__(self) -> None:
        for name in ("very_low", "low", "medium", "high", "very_high"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"size multiplier {name} must be finite and >= 0, not {value!r}")


def size_multiplier(level: ConfidenceLevel, params: SizeMultipliers | None = None) -> float:
    """The live size multiplier of ``level`` (defaults 0, 0, 0.5, 1.0, 1.25)."""
    p = params if params is not None else SizeMultipliers()
    return float(getattr(p, ConfidenceLevel(level).name.lower()))


def reason_code(level: ConfidenceLevel) -> str:
    """The ``risk.decisions`` reason of a level, e.g. ``"confidence:LOW"``."""
    return f"confidence:{ConfidenceLevel(level).name}"


def _default_regime_offsets() -> Mapping[str, float]:
    """Per-regime threshold offsets (reasons in ThresholdParams)."""
    return {"TREND": 0.0, "RANGE": 0.05, "PANIC": 0.10, "ILLIQUID": 0.10}


@dataclass(frozen=True)
class ThresholdParams:
    """Defaults of the dynamic threshold, with their reasons.

    - base 0.70: seed 001 §5, ``DynamicThresholdManager(base_threshold=0.70)``.
    - regime_offsets: TREND 0 (the runner regime the base is set for), RANGE +0.05 (mean
      reversion edges are small against costs), PANIC +0.10 and ILLIQUID +0.10 (slippage and
      model error are largest there); a regime not listed gets unknown_regime_offset +0.10,
      the most cautious one.
    - vol_ref_pct 2.0: the middle of the RANGE band of daily volatility (1-4 %, seed 003 §2 in
      feature_bus); vol_slope 0.05 per 100 % above it (twice the reference vol: +0.05), the
      term clipped to [-0.05, +0.10] so calm markets lower the bar only a little.
    - target_accuracy 0.70: a signal passing at 0.70 calibrated confidence should be right
      70 % of the time; accuracy_slope 0.5 (a hit rate 10 points short: +0.05), the term
      clipped to [-0.05, +0.10].
    - floor 0.55: never below MEDIUM's lower bound (below it the seed says paper or nothing);
      ceiling 0.90: above VERY_HIGH's 0.85, so the gate can still open in a bad regime.
    """

    base: float = 0.70
    regime_offsets: Mapping[str, float] = field(default_factory=_default_regime_offsets)
    unknown_regime_offset: float = 0.10
    vol_ref_pct: float = 2.0
    vol_slope: float = 0.05
    vol_term_min: float = -0.05
    vol_term_max: float = 0.10
    target_accuracy: float = 0.70
    accuracy_slope: float = 0.5
    acc_term_min: float = -0.05
    acc_term_max: float = 0.10
    floor: float = 0.55
    ceiling: float = 0.90

    def __post_init__(self) -> None:
        # a frozen dataclass still holds a mutable dict: freeze the offsets too
        object.__setattr__(self, "regime_offsets", MappingProxyType(dict(self.regime_offsets)))
        if not (self.vol_ref_pct > 0.0):
            raise ValueError(f"vol_ref_pct must be > 0, not {self.vol_ref_pct!r}")
        if self.vol_slope < 0.0 or self.accuracy_slope < 0.0:
            raise ValueError("vol_slope and accuracy_slope must be >= 0 (the rule's monotonicity)")
        if not (self.vol_term_min <= self.vol_term_max and self.acc_term_min <= self.acc_term_max):
            raise ValueError("each term's min must be <= its max")
        if not (0.0 <= self.floor <= self.ceiling <= 1.0):
            raise ValueError(f"need 0 <= floor <= ceiling <= 1: {self.floor!r}, {self.ceiling!r}")


class DynamicThreshold:
    """The minimum calibrated confidence to trade, moved by regime, volatility and accuracy."""

    def __init__(self, params: ThresholdParams | None = None) -> None:
        self.params = params if params is not None else ThresholdParams()

    def threshold(
        self, regime: str, volatility_pct: float, recent_accuracy: float | None = None
    ) -> float:
        """t = clip(base + regime offset + volatility term + accuracy term, floor, ceiling)."""
        p = self.params
        if not (math.isfinite(volatility_pct) and volatility_pct >= 0.0):
            raise ValueError(f"volatility_pct must be finite and >= 0, not {volatility_pct!r}")
        offset = p.regime_offsets.get(regime, p.unknown_regime_offset)
        vol_term = p.vol_slope * (volatility_pct / p.vol_ref_pct - 1.0)
        t = p.base + offset + min(max(vol_term, p.vol_term_min), p.vol_term_max)
        if recent_accuracy is not None:
            if not (0.0 <= recent_accuracy <= 1.0):
                raise ValueError(f"recent_accuracy must be in [0, 1], not {recent_accuracy!r}")
            acc_term = p.accuracy_slope * (p.target_accuracy - recent_accuracy)
            t += min(max(acc_term, p.acc_term_min), p.acc_term_max)
        return min(max(t, p.floor), p.ceiling)

    def passes(
        self,
        calibrated_confidence: float,
        regime: str,
        volatility_pct: float,
        recent_accuracy: float | None = None,
    ) -> bool:
        """calibrated confidence >= threshold (False for NaN)."""
        t = self.threshold(regime, volatility_pct, recent_accuracy)
        return bool(calibrated_confidence >= t)
