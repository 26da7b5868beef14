"""Trust index of a model: how much of its configured weight it has earned (seed 000 §2).

Seed 000 §2 asks for "a confidence weight blending model accuracy, drawdown duration, and
recovery slope" plus the recent performance, in [0, 1], with a capital allocation and a
recommendation, and (seed 000, "With Council") a vote weight 0.6 * trust + 0.4 * (1 - p).
It gives no formula, so the choices below are ours; docs/validation.md gives the reasons and
a hand-worked example.

Inputs and units:

- accuracy: share of scored outcomes the model called right (hit rate, fraction in [0, 1]),
  shrunk toward a coin flip for few outcomes,
  acc_used = (accuracy * n + 0.5 * k) / (n + k),  k = ``accuracy_prior_outcomes``;
- drawdown_duration_days: days since the cumulative daily PnL's last peak (0 at a new high);
- recovery_slope: bps per day, the OLS slope of the cumulative PnL since the drawdown's trough;
- recent_performance: annualised Sharpe (sqrt(252)) of the last ``recent_days`` daily PnLs.

Component scores, each in [0, 1] and monotone in its input:

    accuracy  = clip((acc_used - 0.5) / (accuracy_full - 0.5), 0, 1)
    drawdown  = 0.5 ** (drawdown_duration_days / drawdown_half_life_days)
    recovery  = 1 when drawdown_duration_days == 0 (nothing to recover from), else
                clip(0.5 + 0.5 * recovery_slope / recovery_full_bps_per_day, 0, 1)
    recent    = clip(0.5 + 0.5 * recent_performance / sharpe_full, 0, 1)

    trust = sum(weight_c * score_c) / sum(weight_c)

Allocation (a multiplier of the model's configured weight) and recommendation:

    trust <  suspend_below                 SUSPEND   0
    trust <  maintain_from                 REDUCE    trust / maintain_from
    trust <  increase_from                 MAINTAIN  1
    trust >= increase_from                 INCREASE  1 + (max_allocation - 1) *
                                                     (trust - increase_from) / (1 - increase_from)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TRADING_DAYS_PER_YEAR = 252.0
COIN_FLIP = 0.5

INCREASE = "INCREASE"
MAINTAIN = "MAINTAIN"
REDUCE = "REDUCE"
SUSPEND = "SUSPEND"
RECOMMENDATIONS = (INCREASE, MAINTAIN, REDUCE, SUSPEND)

# seed 000, "With Council": vote_weight = 0.6 * trust + 0.4 * (1 - p)
VOTE_TRUST_SHARE = 0.6
VOTE_SIGNIFICANCE_SHARE = 0.4


@dataclass(frozen=True, slots=True)
class TrustParams:
    """The trust index's knobs. Only the vote weight's 0.6 / 0.4 are the seed's; the rest
    are ours, with the reason next to each (docs/validation.md, "Trust index")."""

    # 20 pseudo-outcomes at 0.5: 10 right calls of 10 is shrunk to 0.67, 100 of 150 to 0.647
    accuracy_prior_outcomes: float = 20.0
    # a 65 % directional hit rate is already exceptional for a trading signal; 0.5 is a coin
    accuracy_full: float = 0.65
    # two weeks under water halve the drawdown score: long enough to ignore a bad day
    drawdown_half_life_days: float = 10.0
    # seed 002's promotion bar (+10 bps a day) as the slope of a full recovery
    recovery_full_bps_per_day: float = 10.0
    # an annualised Sharpe of 2 scores 1, -2 scores 0, 0 sits in the middle
    sharpe_full: float = 2.0
    # a month of trading days for the recent Sharpe, at least a week of them
    recent_days: int = 20
    min_recent_days: int = 5
    # accuracy is the best-measured input (many outcomes), the recovery slope the noisiest
    weight_accuracy: float = 0.35
    weight_drawdown: float = 0.25
    weight_recovery: float = 0.15
    weight_recent: float = 0.25
    suspend_below: float = 0.3
    maintain_from: float = 0.5
    increase_from: float = 0.7
    max_allocation: float = 1.5

    def __post_init__(self) -> None:
        if self.accuracy_prior_outcomes < 0:
            raise ValueError("accuracy_prior_outcomes must be >= 0")
        if not COIN_FLIP < self.accuracy_full <= 1.0:
            raise ValueError("accuracy_full must be in (0.5, 1]")
        for key in ("drawdown_half_life_days", "recovery_full_bps_per_day", "sharpe_full"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0")
        if not 2 <= self.min_recent_days <= self.recent_days:
            raise ValueError("need 2 <= min_recent_days <= recent_days")
        weights = self.weights()
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weight_* must be >= 0 with a positive sum")
        if not 0 <= self.suspend_below <= self.maintain_from <= self.increase_from < 1:
            raise ValueError("need 0 <= suspend_below <= maintain_from <= increase_from < 1")
        if self.maintain_from <= 0:
            raise ValueError("maintain_from must be > 0")
        if self.max_allocation < 1:
            raise ValueError("max_allocation must be >= 1")

    def weights(self) -> dict[str, float]:
        """Component name -> weight (the keys of ``Trust.components``)."""
        return {
            "accuracy": self.weight_accuracy,
            "drawdown": self.weight_drawdown,
            "recovery": self.weight_recovery,
            "recent": self.weight_recent,
        }


@dataclass(frozen=True, slots=True)
class Trust:
    trust_index: float
    capital_allocation: float
    recommendation: str
    accuracy: float  # the shrunk accuracy the score used
    drawdown_duration_days: float
    recovery_slope: float  # bps per day
    recent_performance: float  # annualised Sharpe
    components: dict[str, float]


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def shrunk_accuracy(accuracy: float, n_outcomes: int, prior_outcomes: float) -> float:
    """(accuracy * n + 0.5 * k) / (n + k): a Beta prior worth k outcomes centred on a coin
    flip, so that 3 right calls of 3 do not read as a perfect model. 0.5 when n + k = 0."""
    total = n_outcomes + prior_outcomes
    if total <= 0:
        return COIN_FLIP
    return (accuracy * n_outcomes + COIN_FLIP * prior_outcomes) / total


def component_scores(
    accuracy_used: float,
    drawdown_duration_days: float,
    recovery_slope: float,
    recent_performance: float,
    params: TrustParams,
) -> dict[str, float]:
    """Each input mapped into [0, 1] (formulas in the module docstring)."""
    acc = _clip01((accuracy_used - COIN_FLIP) / (params.accuracy_full - COIN_FLIP))
    drawdown = 0.5 ** (drawdown_duration_days / params.drawdown_half_life_days)
    if drawdown_duration_days == 0:
        recovery = 1.0
    else:
        recovery = _clip01(0.5 + 0.5 * recovery_slope / params.recovery_full_bps_per_day)
    recent = _clip01(0.5 + 0.5 * recent_performance / params.sharpe_full)
    return {"accuracy": acc, "drawdown": drawdown, "recovery": recovery, "recent": recent}


def allocation_and_recommendation(trust: float, params: TrustParams) -> tuple[float, str]:
    """The piecewise map of the module docstring: non-decreasing in trust."""
    if trust < params.suspend_below:
        return 0.0, SUSPEND
    if trust < params.maintain_from:
        return trust / params.maintain_from, REDUCE
    if trust < params.increase_from:
        return 1.0, MAINTAIN
    above = (trust - params.increase_from) / (1.0 - params.increase_from)
    return 1.0 + (params.max_allocation - 1.0) * min(1.0, above), INCREASE


def trust_index(
    accuracy: float,
    drawdown_duration_days: float,
    recovery_slope: float,
    recent_performance: float,
    n_outcomes: int,
    params: TrustParams = TrustParams(),  # noqa: B008 (frozen, never mutated)
) -> Trust:
    """Trust in [0, 1] as the weighted mean of the component scores (module docstring).

    accuracy is a fraction in [0, 1] over n_outcomes scored outcomes, drawdown_duration_days
    >= 0, recovery_slope in bps per day, recent_performance an annualised Sharpe."""
    values = (accuracy, drawdown_duration_days, recovery_slope, recent_performance)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("trust inputs must be finite")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], not {accuracy}")
    if drawdown_duration_days < 0:
        raise ValueError("drawdown_duration_days must be >= 0")
    if n_outcomes < 0:
        raise ValueError("n_outcomes must be >= 0")
    acc_used = shrunk_accuracy(accuracy, n_outcomes, params.accuracy_prior_outcomes)
    scores = component_scores(
        acc_used, drawdown_duration_days, recovery_slope, recent_performance, params
    )
    weights = params.weights()
    trust = _clip01(sum(weights[k] * s for k, s in scores.items()) / sum(weights.values()))
    allocation, recommendation = allocation_and_recommendation(trust, params)
    return Trust(
        trust_index=trust,
        capital_allocation=allocation,
        recommendation=recommendation,
        accuracy=acc_used,
        drawdown_duration_days=float(drawdown_duration_days),
        recovery_slope=float(recovery_slope),
        recent_performance=float(recent_performance),
        components=scores,
    )


def drawdown_state(daily_pnl_bps: npt.ArrayLike) -> tuple[int, float]:
    """(days since the last peak, recovery slope in bps/day) of the cumulative PnL.

    The curve starts at 0 before day 1; a day at or above the running peak is a peak, so the
    duration is 0 at a new high (and the slope 0: there is no drawdown). Otherwise the slope
    is the OLS slope of the cumulative PnL over the days from the drawdown's trough (its
    first lowest point after the peak) to the last day; when the trough is the last day the
    fit takes it and the day before, so the slope is that day's (negative) PnL."""
    curve = np.concatenate(([0.0], np.cumsum(np.asarray(daily_pnl_bps, dtype=np.float64))))
    peaks = np.flatnonzero(curve >= np.maximum.accumulate(curve))
    peak = int(peaks[-1])
    last = curve.size - 1
    if peak == last:
        return 0, 0.0
    trough = peak + int(np.argmin(curve[peak:]))
    start = min(trough, last - 1)
    y = curve[start:]
    x = np.arange(y.size, dtype=np.float64)
    slope = float(np.polyfit(x, y, 1)[0]) if y.size >= 2 else 0.0
    return last - peak, slope


def annualised_sharpe(daily_pnl_bps: npt.ArrayLike, min_days: int) -> float:
    """mean / std(ddof 1) * sqrt(252); 0 with fewer than min_days days or no variation."""
    r = np.asarray(daily_pnl_bps, dtype=np.float64)
    if r.size < max(2, min_days):
        return 0.0
    std = float(r.std(ddof=1))
    mean = float(r.mean())
    # a constant series (std 0 up to rounding) has no Sharpe, as in permutation.py
    if std <= 1e-12 * max(abs(mean), np.finfo(np.float64).tiny):
        return 0.0
    return mean / std * math.sqrt(TRADING_DAYS_PER_YEAR)


def trust_from_record(
    daily_pnl_bps: Sequence[float],
    hits: int,
    scored: int,
    params: TrustParams = TrustParams(),  # noqa: B008 (frozen, never mutated)
) -> Trust:
    """Trust of a model from its daily PnL (bps, oldest first) and its scored calls:
    accuracy = hits / scored (0.5 with none, then shrunk), the drawdown state of
    ``drawdown_state`` and the Sharpe of the last ``recent_days`` days."""
    if not 0 <= hits <= scored:
        raise ValueError(f"need 0 <= hits <= scored, got hits={hits} scored={scored}")
    pnl = np.asarray(daily_pnl_bps, dtype=np.float64)
    if pnl.ndim != 1 or not np.isfinite(pnl).all():
        raise ValueError("daily_pnl_bps must be a finite 1-d sequence")
    accuracy = hits / scored if scored else COIN_FLIP
    days, slope = drawdown_state(pnl)
    recent = annualised_sharpe(pnl[-params.recent_days :], params.min_recent_days)
    return trust_index(accuracy, float(days), slope, recent, scored, params)


def vote_weight(trust: float, p_value: float | None) -> float:
    """0.6 * trust + 0.4 * (1 - p) (seed 000, "With Council"), in [0, 1].

    p_value None means the model has no validation result yet: the weight is 1.0, so its
    rule weight stays as configured until a test has spoken (rather than a trust-only 0.6 *
    trust, which would cut every new model's vote by 40 % for lack of paperwork)."""
    if p_value is None:
        return 1.0
    if not 0.0 <= trust <= 1.0:
        raise ValueError(f"trust must be in [0, 1], not {trust}")
    if not 0.0 <= p_value <= 1.0:
        raise ValueError(f"p_value must be in [0, 1], not {p_value}")
    return VOTE_TRUST_SHARE * trust + VOTE_SIGNIFICANCE_SHARE * (1.0 - p_value)
