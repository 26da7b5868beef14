"""Champion against challenger: shadow promotion (seed 002) and canary (seed 003 §9).

Two models trade (or shadow-trade) the same days; d_t = challenger_t - champion_t is the
daily excess PnL in bps, t = 1..n. Seed 002 promotes a shadow challenger when it is better
on 5+ consecutive days, by +10 bps a day, with ES(95 %) > 0, p < 0.05 and 50+ trades; seed
003 §9 compares PnL, hit rate, Sharpe, IR, drawdown, turnover and cost per trade, tests with
a t-test or a bootstrap, and wants "no degradation in any critical metric".

Null hypothesis H0: the challenger's mean daily PnL is not above the champion's,
E[d] <= 0. The p-value is one-sided:

- ``test="t"``: the paired t-test, t = mean(d) / (std(d, ddof 1) / sqrt(n)), p = P(T_{n-1}
  >= t) (scipy's ``ttest_rel(challenger, champion, alternative="greater")``); with std 0, p
  is 0 when mean(d) > 0 and 1 otherwise;
- ``test="bootstrap"``: B resamples of the n days with replacement (seeded), means m_b; H0
  is imposed by centring (Efron & Tibshirani 1993, §16.4):
  p = (1 + #{b : m_b - mean(d) >= mean(d)}) / (1 + B).

ES criterion (our reading of seed 002's "ES(95 %) > 0"): the expected shortfall at 95 % of
the bootstrap distribution of the mean excess, es = mean of the ceil(0.05 B) smallest m_b,
must be > 0: even the average of the worst 5 % of resampled outcomes of the comparison is
a gain. For normal d it is mean(d) - 2.06 * std(d) / sqrt(n) (phi(1.645) / 0.05 = 2.063),
a little stricter than p < 0.05 (about p < 0.02) and free of the normal assumption. The ES of
the daily excess itself (the mean of the worst 5 % of days > 0) would need every day to be
better: impossible in practice; the ES as a loss > 0 would be true of nearly any series.

Track metrics (daily PnL r_t in bps): Sharpe = mean / std(ddof 1) * sqrt(252), 0 with fewer
than 2 days or no variation; IR = the same of r - benchmark; max drawdown = the largest fall
of the cumulative PnL (from 0) below its running peak, in bps, >= 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

TRADING_DAYS_PER_YEAR = 252.0
TESTS = ("t", "bootstrap")
CRITERIA = ("days_better", "excess", "es", "p_value", "trades", "no_worse")
# which way is better for each comparable TrackMetrics field
HIGHER_IS_BETTER = {
    "pnl_bps": True,
    "mean_daily_bps": True,
    "hit_rate": True,
    "sharpe": True,
    "information_ratio": True,
    "max_drawdown_bps": False,
    "turnover": False,
    "cost_per_trade_bps": False,
}
# a metric is worse only beyond rounding: this fraction of the larger magnitude
WORSE_RTOL = 1e-9


@dataclass(frozen=True, slots=True)
class TrackMetrics:
    days: int
    pnl_bps: float
    mean_daily_bps: float
    hit_rate: float | None
    sharpe: float
    information_ratio: float | None
    max_drawdown_bps: float
    turnover: float
    cost_per_trade_bps: float | None
    trades: int


def sharpe_annualised(daily_bps: FloatArray) -> float:
    """mean / std(ddof 1) * sqrt(252); 0 with fewer than 2 days or no variation."""
    if daily_bps.size < 2:
        return 0.0
    mean = float(daily_bps.mean())
    std = float(daily_bps.std(ddof=1))
    if std <= 1e-12 * max(abs(mean), np.finfo(np.float64).tiny):
        return 0.0
    return mean / std * math.sqrt(TRADING_DAYS_PER_YEAR)


def max_drawdown_bps(daily_bps: FloatArray) -> float:
    """Largest fall of the cumulative PnL (starting at 0) below its running peak, >= 0."""
    curve = np.concatenate(([0.0], np.cumsum(daily_bps)))
    return float((np.maximum.accumulate(curve) - curve).max())


def _series(values: Sequence[float] | FloatArray, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a non-empty finite 1-d sequence")
    return arr


def track_metrics(
    daily_pnl_bps: Sequence[float] | FloatArray,
    *,
    trades: int,
    hits: int,
    turnover: float,
    cost_bps_total: float,
    benchmark_daily_bps: Sequence[float] | FloatArray | None = None,
) -> TrackMetrics:
    """Seed 003 §9's metrics of one track: hit rate = hits / trades (None without trades),
    cost per trade = cost_bps_total / trades (None without trades), IR against the
    benchmark (None without one); turnover is passed through in the caller's unit."""
    r = _series(daily_pnl_bps, "daily_pnl_bps")
    if not 0 <= hits <= trades:
        raise ValueError(f"need 0 <= hits <= trades, got hits={hits} trades={trades}")
    if not (math.isfinite(turnover) and math.isfinite(cost_bps_total)):
        raise ValueError("turnover and cost_bps_total must be finite")
    ir: float | None = None
    if benchmark_daily_bps is not None:
        bench = _series(benchmark_daily_bps, "benchmark_daily_bps")
        if bench.shape != r.shape:
            raise ValueError(f"benchmark has {bench.size} days, the track {r.size}")
        ir = sharpe_annualised(r - bench)
    return TrackMetrics(
        days=int(r.size),
        pnl_bps=float(r.sum()),
        mean_daily_bps=float(r.mean()),
        hit_rate=hits / trades if trades else None,
        sharpe=sharpe_annualised(r),
        information_ratio=ir,
        max_drawdown_bps=max_drawdown_bps(r),
        turnover=float(turnover),
        cost_per_trade_bps=cost_bps_total / trades if trades else None,
        trades=int(trades),
    )


@dataclass(frozen=True, slots=True)
class PromotionParams:
    """Seed 002's five criteria, seed 003 §9's test and critical metrics, our canary."""

    min_days_better: int = 5  # seed 002: 5+ consecutive days better
    min_excess_bps_per_day: float = 10.0  # seed 002: +10 bps a day
    es_level: float = 0.95  # seed 002: ES(95 %) > 0, read as in the module docstring
    max_p_value: float = 0.05  # seed 002 and 003 §9: p < 0.05
    min_trades: int = 50  # seed 002: 50+ trades
    test: str = "t"  # seed 003 §9: t-test or bootstrap
    n_bootstrap: int = 2000
    seed: int = 0
    # seed 003 §9: no degradation in a critical metric (ours: which ones; no tolerance)
    critical: tuple[str, ...] = ("sharpe", "max_drawdown_bps", "hit_rate")
    canary_fraction: float = 0.1  # ours: a tenth of the full weight while in canary
    canary_days: int = 5  # ours: a trading week in canary, seed 002's streak length

    def __post_init__(self) -> None:
        if self.min_days_better < 0:
            raise ValueError("min_days_better must be >= 0")
        if not 0.0 < self.es_level < 1.0:
            raise ValueError("es_level must be in (0, 1)")
        if not 0.0 < self.max_p_value <= 1.0:
            raise ValueError("max_p_value must be in (0, 1]")
        if self.min_trades < 0:
            raise ValueError("min_trades must be >= 0")
        if self.test not in TESTS:
            raise ValueError(f"test must be one of {TESTS}, not {self.test!r}")
        if self.n_bootstrap < 1:
            raise ValueError("n_bootstrap must be >= 1")
        unknown = [m for m in self.critical if m not in HIGHER_IS_BETTER]
        if unknown:
            raise ValueError(f"critical names unknown metrics {unknown}; known: {HIGHER_IS_BETTER}")
        if not 0.0 <= self.canary_fraction <= 1.0:
            raise ValueError("canary_fraction must be in [0, 1]")
        if self.canary_days < 1:
            raise ValueError("canary_days must be >= 1")


@dataclass(frozen=True, slots=True)
class Comparison:
    challenger: TrackMetrics
    champion: TrackMetrics
    days: int
    days_better_streak: int
    mean_excess_bps_per_day: float
    es_bps: float
    p_value: float
    test: str
    worse: tuple[str, ...]
    passed: dict[str, bool]
    params: PromotionParams = PromotionParams()  # noqa: RUF009 (frozen)

    @property
    def promotable(self) -> bool:
        return all(self.passed.get(c, False) for c in CRITERIA)

    def reasons(self) -> list[str]:
        """The failed criteria with their numbers, in CRITERIA order."""
        p = self.params
        text = {
            "days_better": f"days_better streak {self.days_better_streak} < {p.min_days_better}",
            "excess": (
                f"excess {self.mean_excess_bps_per_day:.2f} bps/day < {p.min_excess_bps_per_day:g}"
            ),
            "es": f"es {self.es_bps:.2f} bps <= 0 (ES {p.es_level:.0%} of the mean excess)",
            "p_value": f"p_value {self.p_value:.4g} >= {p.max_p_value:g} ({self.test})",
            "trades": f"trades {self.challenger.trades} < {p.min_trades}",
            "no_worse": "worse in " + ", ".join(self.worse_text()),
        }
        return [text[c] for c in CRITERIA if not self.passed.get(c, False)]

    def worse_text(self) -> list[str]:
        out = []
        for name in self.worse:
            chal = getattr(self.challenger, name)
            champ = getattr(self.champion, name)
            out.append(f"{name} (challenger {chal:.4g} vs champion {champ:.4g})")
        return out


def days_better_streak(excess_bps: FloatArray) -> int:
    """Consecutive most recent days with challenger > champion (excess > 0)."""
    not_better = np.flatnonzero(excess_bps <= 0)
    if not_better.size == 0:
        return int(excess_bps.size)
    return int(excess_bps.size - 1 - not_better[-1])


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
            -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for a, b > 0, x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T_df >= t) = I_{df / (df + t^2)}(df / 2, 1 / 2) / 2 for t >= 0 (scipy's t.sf; scipy
    is a test-only dependency here, so the runtime carries its own)."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def paired_t_p_value(excess_bps: FloatArray) -> float:
    """One-sided p of H0 mean(excess) <= 0 (module docstring)."""
    n = excess_bps.size
    mean = float(excess_bps.mean())
    std = float(excess_bps.std(ddof=1)) if n >= 2 else 0.0
    if std <= 1e-12 * max(abs(mean), np.finfo(np.float64).tiny):
        return 0.0 if mean > 0 and n >= 2 else 1.0
    return student_t_sf(mean / (std / math.sqrt(n)), n - 1)


def bootstrap_means(excess_bps: FloatArray, n_bootstrap: int, seed: int) -> FloatArray:
    """Means of n_bootstrap resamples of the days with replacement (numpy default_rng)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, excess_bps.size, size=(n_bootstrap, excess_bps.size))
    return np.asarray(excess_bps[idx].mean(axis=1), dtype=np.float64)


def bootstrap_p_value(excess_bps: FloatArray, means: FloatArray) -> float:
    """(1 + #{m_b - mean >= mean}) / (1 + B): the resampled means centred on H0's 0."""
    mean = float(excess_bps.mean())
    tol = 1e-12 * max(abs(mean), float(np.abs(means).max()))
    k = int(np.count_nonzero(means - mean >= mean - tol))
    return (1 + k) / (1 + means.size)


def expected_shortfall_of_mean(means: FloatArray, level: float) -> float:
    """Mean of the ceil((1 - level) * B) smallest bootstrap means (bps a day)."""
    k = max(1, math.ceil((1.0 - level) * means.size - 1e-9))
    return float(np.sort(means)[:k].mean())


def worse_metrics(
    challenger: TrackMetrics, champion: TrackMetrics, critical: Sequence[str]
) -> tuple[str, ...]:
    """The critical metrics where the challenger is strictly worse (beyond rounding); a
    metric that either side lacks (None, e.g. a hit rate without trades) is not compared."""
    out = []
    for name in critical:
        chal = getattr(challenger, name)
        champ = getattr(champion, name)
        if chal is None or champ is None:
            continue
        tol = WORSE_RTOL * max(abs(chal), abs(champ), 1e-300)
        gap = (champ - chal) if HIGHER_IS_BETTER[name] else (chal - champ)
        if gap > tol:
            out.append(name)
    return tuple(out)


def compare(
    challenger_daily_bps: Sequence[float] | FloatArray,
    champion_daily_bps: Sequence[float] | FloatArray,
    *,
    challenger_trades: int,
    challenger_hits: int,
    challenger_turnover: float,
    challenger_cost_bps: float,
    champion_trades: int,
    champion_hits: int,
    champion_turnover: float,
    champion_cost_bps: float,
    params: PromotionParams = PromotionParams(),  # noqa: B008 (frozen, never mutated)
) -> Comparison:
    """Seed 002's criteria on two aligned daily series (same days, oldest first, >= 2 days).

    Each side's IR is against the other (the champion's is minus the challenger's)."""
    chal = _series(challenger_daily_bps, "challenger_daily_bps")
    champ = _series(champion_daily_bps, "champion_daily_bps")
    if chal.shape != champ.shape:
        raise ValueError(f"challenger has {chal.size} days, champion {champ.size}: not aligned")
    if chal.size < 2:
        raise ValueError("compare needs at least 2 aligned days")
    excess = chal - champ
    chal_m = track_metrics(
        chal,
        trades=challenger_trades,
        hits=challenger_hits,
        turnover=challenger_turnover,
        cost_bps_total=challenger_cost_bps,
        benchmark_daily_bps=champ,
    )
    champ_m = track_metrics(
        champ,
        trades=champion_trades,
        hits=champion_hits,
        turnover=champion_turnover,
        cost_bps_total=champion_cost_bps,
        benchmark_daily_bps=chal,
    )
    means = bootstrap_means(excess, params.n_bootstrap, params.seed)
    p = paired_t_p_value(excess) if params.test == "t" else bootstrap_p_value(excess, means)
    es = expected_shortfall_of_mean(means, params.es_level)
    streak = days_better_streak(excess)
    mean_excess = float(excess.mean())
    worse = worse_metrics(chal_m, champ_m, params.critical)
    passed = {
        "days_better": streak >= params.min_days_better,
        "excess": mean_excess >= params.min_excess_bps_per_day,
        "es": es > 0.0,
        "p_value": p < params.max_p_value,
        "trades": chal_m.trades >= params.min_trades,
        "no_worse": not worse,
    }
    return Comparison(
        challenger=chal_m,
        champion=champ_m,
        days=int(chal.size),
        days_better_streak=streak,
        mean_excess_bps_per_day=mean_excess,
        es_bps=es,
        p_value=p,
        test=params.test,
        worse=worse,
        passed=passed,
        params=params,
    )


class Stage(StrEnum):
    SHADOW = "shadow"
    CANARY = "canary"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class StageChange:
    model_id: str
    from_stage: Stage
    to_stage: Stage
    reason: str


def stage_weight(stage: Stage, params: PromotionParams = PromotionParams()) -> float:  # noqa: B008
    """Share of the model's full weight: shadow 0 (it trades on paper), canary
    ``canary_fraction``, live 1."""
    return {Stage.SHADOW: 0.0, Stage.CANARY: params.canary_fraction, Stage.LIVE: 1.0}[stage]


def next_stage(
    model_id: str,
    stage: Stage,
    comparison: Comparison | None,
    days_in_stage: int,
    params: PromotionParams = PromotionParams(),  # noqa: B008 (frozen, never mutated)
) -> StageChange | None:
    """The stage machine; None = stay.

    SHADOW -> CANARY when ``comparison.promotable``. CANARY, once days_in_stage >=
    canary_days, judged on the comparison over the canary days: -> SHADOW when a critical
    metric is worse or the mean excess is < 0, else -> LIVE (the canary asks "no harm at
    small size", not seed 002's full bar again). LIVE never changes here: demoting a live
    model is out of scope (the breakers and the trust index act on live models)."""
    if comparison is None or stage is Stage.LIVE:
        return None
    if stage is Stage.SHADOW:
        if not comparison.promotable:
            return None
        reason = (
            f"promotable: streak {comparison.days_better_streak} >= {params.min_days_better},"
            f" excess {comparison.mean_excess_bps_per_day:.2f} >= "
            f"{params.min_excess_bps_per_day:g} bps/day, es {comparison.es_bps:.2f} bps > 0,"
            f" p {comparison.p_value:.4g} < {params.max_p_value:g} ({comparison.test}),"
            f" trades {comparison.challenger.trades} >= {params.min_trades},"
            " no critical metric worse"
        )
        return StageChange(model_id, Stage.SHADOW, Stage.CANARY, reason)
    if days_in_stage < params.canary_days:
        return None
    excess = comparison.mean_excess_bps_per_day
    if comparison.worse or excess < 0.0:
        problems = []
        if comparison.worse:
            problems.append("worse in " + ", ".join(comparison.worse_text()))
        if excess < 0.0:
            problems.append(f"mean excess {excess:.2f} bps/day < 0")
        reason = f"canary after {days_in_stage} days: " + "; ".join(problems)
        return StageChange(model_id, Stage.CANARY, Stage.SHADOW, reason)
    reason = (
        f"canary after {days_in_stage} >= {params.canary_days} days: mean excess "
        f"{excess:.2f} bps/day >= 0, no critical metric worse"
    )
    return StageChange(model_id, Stage.CANARY, Stage.LIVE, reason)
