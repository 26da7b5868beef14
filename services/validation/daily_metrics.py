"""The seven daily metrics of seed 000 "Metrics and Monitoring / Daily Metrics".

1. OOS Sharpe and its standard deviation across windows   (``oos_sharpe``)
2. Brier score of confidence per regime                    (``brier_by_regime``)
3. Diversity score in consensus                            (``consensus_diversity``)
4. Simulator slippage error vs realised costs              (``slippage_error``)
5. Exploration budget used vs cap                          (``exploration_budget``)
6. Early warning precision and recall                      (``early_warning``)
7. Drawdown days saved by risk advisories                  (``drawdown_days_saved``)

The seed names the metrics and nothing more; each function's docstring says what we
measure, and docs/daily.md gives the choices made where the seed is vague. Pure: plain
values in (the daily job extracts them from the stack or a backtest), numbers out; no
I/O, no wall clock. A metric with nothing to measure is NaN (``null`` in JSON), not 0.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.backtest.metrics import DEFAULT_PERIODS_PER_YEAR, drawdown_frac, sharpe_ratio
from services.backtest.numbers import NAN, NS_PER_DAY

# --- 1. out-of-sample Sharpe across walk-forward windows ------------------------------


def oos_sharpe(
    segment_returns: Sequence[Sequence[float]],
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
) -> tuple[float, float]:
    """(mean, std) over out-of-sample windows of each window's annualised Sharpe.

    Window j's Sharpe is mean(r) / std(r, ddof=1) * sqrt(P) of its period returns
    (``services.backtest.metrics.sharpe_ratio``); a window with fewer than two returns,
    or all its returns equal (no dispersion, no Sharpe), is left out. mean over the K windows kept;
    std the sample std (ddof=1) across them: NaN for K < 2, and both NaN for K = 0.
    Source: seed 000 §1 (walk-forward stability) and "Daily Metrics" item 1.
    """
    values = []
    for seg in segment_returns:
        r = np.asarray(seg, dtype=float)
        # identical returns: std is 0 or rounding noise (1e-18), and the ratio means nothing
        if r.size >= 2 and np.ptp(r) > 0:
            values.append(sharpe_ratio(r, periods_per_year))
    kept = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if kept.size == 0:
        return NAN, NAN
    std = float(np.std(kept, ddof=1)) if kept.size >= 2 else NAN
    return float(np.mean(kept)), std


# --- 2. Brier score of confidence, per regime -----------------------------------------


def direction_probability(confidence: float) -> float:
    """p = (1 + c) / 2: the probability a signal of confidence c gives its own direction
    (the router's convention, services/model_router/consensus.py step 1)."""
    return (1.0 + confidence) / 2.0


@dataclass(frozen=True)
class RegimeBrier:
    brier: float  # mean (p - o)^2 in [0, 1]; 0.25 is a coin that always says 0.5
    n: int


def brier_by_regime(rows: Iterable[tuple[str, float, bool]]) -> dict[str, RegimeBrier]:
    """Brier score per regime of the probability a signal gave its own direction.

    A row is (regime, p, hit): p in [0, 1] the probability of the signal's direction
    (``direction_probability`` of its confidence), hit whether the realised return over
    the signal's horizon had the sign of its edge_bps. Brier = (1/n) sum (p - o)^2 with
    o = 1 for a hit, 0 otherwise (Brier 1950), over the rows of the regime. Regimes come
    sorted by name; a regime with no row is absent.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for regime, p, hit in rows:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p!r} of regime {regime!r} is outside [0, 1]")
        o = 1.0 if hit else 0.0
        sums[regime] = sums.get(regime, 0.0) + (p - o) ** 2
        counts[regime] = counts.get(regime, 0) + 1
    return {r: RegimeBrier(sums[r] / counts[r], counts[r]) for r in sorted(counts)}


# --- 3. diversity of the consensus ----------------------------------------------------


def diversity_score(edges_bps: Sequence[float], weights: Sequence[float]) -> float:
    """D = 1 - |sum_i w_i s_i| / sum_i w_i, s_i = sign(e_i), over the votes with s_i != 0
    and w_i > 0. 0 when every weighted vote points the same way, 1 when the weight is split
    evenly between long and short; NaN when no vote has a direction and a weight."""
    num = 0.0
    den = 0.0
    for e, w in zip(edges_bps, weights, strict=True):
        if w < 0 or not math.isfinite(w):
            raise ValueError(f"weight {w!r} must be finite and >= 0")
        s = 1.0 if e > 0 else (-1.0 if e < 0 else 0.0)
        if s != 0.0 and w > 0.0:
            num += w * s
            den += w
    return 1.0 - abs(num) / den if den > 0.0 else NAN


def consensus_diversity(decisions: Sequence[Mapping[str, Mapping[str, Any]]]) -> tuple[float, int]:
    """(mean D, n): the mean ``diversity_score`` over the consensus decisions of the day.

    A decision is a Signal's ``votes`` (model_id -> {"edge_bps", "weight", ...}); a vote's
    weight is the consensus weight w_i (1 when absent). Decisions whose D is NaN (no vote
    with a direction and a weight) are left out; n counts the decisions kept.
    """
    scores = []
    for votes in decisions:
        edges = [float(v["edge_bps"]) for v in votes.values()]
        weights = [float(v.get("weight", 1.0)) for v in votes.values()]
        d = diversity_score(edges, weights)
        if math.isfinite(d):
            scores.append(d)
    return (float(np.mean(scores)) if scores else NAN), len(scores)


# --- 4. simulator slippage error ------------------------------------------------------


@dataclass(frozen=True)
class SlippageError:
    n: int
    predicted_mean_bps: float
    realised_mean_bps: float
    bias_bps: float  # mean(realised - predicted): > 0 the model under-predicts costs
    mae_bps: float
    rmse_bps: float


def slippage_error(predicted_bps: Sequence[float], realised_bps: Sequence[float]) -> SlippageError:
    """Error of the cost model's pre-trade estimate against each fill's realised cost.

    e_k = realised_k - predicted_k (bps of notional, positive = a cost): bias = mean(e),
    MAE = mean(|e|), RMSE = sqrt(mean(e^2)). predicted is the execution engine's
    ``predicted_bps`` (risk's ``cost_bps``), realised the fill's slippage_bps + fee_bps.
    All NaN for n = 0.
    """
    p = np.asarray(predicted_bps, dtype=float)
    r = np.asarray(realised_bps, dtype=float)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError(f"predicted {p.shape} and realised {r.shape} must be 1-d, equal")
    if p.size == 0:
        return SlippageError(0, NAN, NAN, NAN, NAN, NAN)
    e = r - p
    return SlippageError(
        n=int(p.size),
        predicted_mean_bps=float(p.mean()),
        realised_mean_bps=float(r.mean()),
        bias_bps=float(e.mean()),
        mae_bps=float(np.abs(e).mean()),
        rmse_bps=float(np.sqrt(np.mean(e * e))),
    )


# --- 5. exploration budget ------------------------------------------------------------


@dataclass(frozen=True)
class ExplorationBudget:
    used_usd: float
    cap_usd: float
    used_pct: float  # 100 * used / cap; NaN when there is no cap


def exploration_used_usd(
    orders: Iterable[tuple[float, Mapping[str, float]]], exploring: Iterable[str]
) -> float:
    """sum_k |size_k| * sum_{m in exploring} share_{k,m}: the risk of the day's orders that
    the models under trial carried. An order is (position_size_usd, engine shares of the
    signal that opened it, ``attribution.engine_shares``); ``exploring`` the canary
    models (shadow models never vote, so they carry no share)."""
    trial = set(exploring)
    total = 0.0
    for size_usd, shares in orders:
        total += abs(size_usd) * math.fsum(s for m, s in shares.items() if m in trial)
    return total


def exploration_budget(used_usd: float, cap_usd: float) -> ExplorationBudget:
    """Risk budget given to exploration against its cap: used_pct = 100 * used / cap.

    Our definition (the seed names the metric only, and the product has no exploration
    budget of its own): ``used_usd`` is the risk the models under trial carried in the
    day's orders (``exploration_used_usd``); ``cap_usd`` the budget the caller allows them.
    NaN used_pct for cap <= 0.
    """
    if used_usd < 0:
        raise ValueError(f"used_usd {used_usd!r} must be >= 0")
    pct = 100.0 * used_usd / cap_usd if cap_usd > 0 else NAN
    return ExplorationBudget(float(used_usd), float(cap_usd), pct)


# --- 6. early warnings ----------------------------------------------------------------


def drawdown_starts(equity: Sequence[tuple[int, float]], threshold_pct: float) -> list[int]:
    """ts_ns at which each drawdown episode first reaches threshold_pct below its peak.

    equity: (ts_ns, equity_usd) marks in time order. dd_t = 1 - E_t / max_{s<=t} E_s; an
    episode runs from a peak until equity regains it, and is reported once, at its first
    mark with 100 * dd_t >= threshold_pct (episodes shallower than the threshold are not
    drawdowns here).
    """
    if threshold_pct <= 0:
        raise ValueError(f"threshold_pct {threshold_pct!r} must be > 0")
    if not equity:
        return []
    ts = [int(t) for t, _ in equity]
    dd = drawdown_frac(np.array([e for _, e in equity], dtype=float))
    starts: list[int] = []
    reported = False
    for t, d in zip(ts, dd, strict=True):
        if d <= 0.0:  # at a new peak: the next fall is a new episode
            reported = False
        elif not reported and 100.0 * d >= threshold_pct:
            starts.append(t)
            reported = True
    return starts


@dataclass(frozen=True)
class EarlyWarning:
    precision: float  # true warnings / warnings; NaN with no warning
    recall: float  # drawdowns warned of / drawdowns; NaN with no drawdown
    n_warnings: int
    n_true_warnings: int
    n_drawdowns: int
    n_drawdowns_warned: int


def early_warning(
    warnings_ts_ns: Sequence[int], drawdown_starts_ts_ns: Sequence[int], lead_ns: int
) -> EarlyWarning:
    """Precision and recall of warnings against the drawdowns that followed.

    A warning at w is true when a drawdown starts in [w, w + lead]; a drawdown starting at
    d is warned of when a warning fell in [d - lead, d]. precision = true warnings /
    warnings, recall = drawdowns warned of / drawdowns. Warnings are the risk breakers'
    trips (RiskDecision action "breaker", reason "breaker:..."), drawdowns
    ``drawdown_starts`` of the equity curve.
    """
    if lead_ns < 0:
        raise ValueError(f"lead_ns {lead_ns!r} must be >= 0")
    warns = sorted(int(w) for w in warnings_ts_ns)
    dds = sorted(int(d) for d in drawdown_starts_ts_ns)

    def any_in(sorted_ts: list[int], lo: int, hi: int) -> bool:
        i = bisect.bisect_left(sorted_ts, lo)
        return i < len(sorted_ts) and sorted_ts[i] <= hi

    true_warns = sum(1 for w in warns if any_in(dds, w, w + lead_ns))
    warned = sum(1 for d in dds if any_in(warns, d - lead_ns, d))
    return EarlyWarning(
        precision=true_warns / len(warns) if warns else NAN,
        recall=warned / len(dds) if dds else NAN,
        n_warnings=len(warns),
        n_true_warnings=true_warns,
        n_drawdowns=len(dds),
        n_drawdowns_warned=warned,
    )


# --- 7. drawdown days saved -----------------------------------------------------------


def days_under_water(equity: Sequence[tuple[int, float]]) -> float:
    """Days the curve spends below its running peak: sum of (t_{k+1} - t_k) / 1 day over
    the marks k (time order) with E_k < max_{s<=k} E_s (equity held from one mark to the
    next). 0 for fewer than two marks."""
    if len(equity) < 2:
        return 0.0
    ts = np.array([t for t, _ in equity], dtype=np.int64)
    dd = drawdown_frac(np.array([e for _, e in equity], dtype=float))
    dt = np.diff(ts)
    if (dt < 0).any():
        raise ValueError("equity marks must be in time order")
    return float(dt[dd[:-1] > 0.0].sum()) / NS_PER_DAY


def drawdown_days_saved(
    equity_with_advisories: Sequence[tuple[int, float]],
    equity_without: Sequence[tuple[int, float]],
) -> float:
    """days_under_water(without) - days_under_water(with): positive when the risk
    advisories (breakers) shortened the time under water. ``equity_without`` is the same
    backtest with the breakers off (the counterfactual the live book cannot give)."""
    return days_under_water(equity_without) - days_under_water(equity_with_advisories)


# --- the daily record -----------------------------------------------------------------


@dataclass(frozen=True)
class DailyMetrics:
    oos_sharpe_mean: float
    oos_sharpe_std: float
    brier: dict[str, RegimeBrier] = field(default_factory=dict)
    diversity: float = NAN
    diversity_n: int = 0
    slippage: SlippageError = field(default_factory=lambda: slippage_error([], []))
    exploration: ExplorationBudget = field(default_factory=lambda: exploration_budget(0.0, 0.0))
    warning: EarlyWarning = field(default_factory=lambda: early_warning([], [], 0))
    drawdown_days_saved: float = NAN

    def as_dict(self) -> dict[str, float | int | None]:
        """Flat keys with their unit; NaN as None (JSON null)."""
        out: dict[str, float | int] = {
            "oos_sharpe_mean": self.oos_sharpe_mean,
            "oos_sharpe_std": self.oos_sharpe_std,
        }
        for regime, b in self.brier.items():
            out[f"brier_{regime}"] = b.brier
            out[f"brier_{regime}_n"] = b.n
        out["consensus_diversity"] = self.diversity
        out["consensus_diversity_n"] = self.diversity_n
        s = self.slippage
        out |= {
            "slippage_n": s.n,
            "slippage_predicted_mean_bps": s.predicted_mean_bps,
            "slippage_realised_mean_bps": s.realised_mean_bps,
            "slippage_bias_bps": s.bias_bps,
            "slippage_mae_bps": s.mae_bps,
            "slippage_rmse_bps": s.rmse_bps,
        }
        e = self.exploration
        out |= {
            "exploration_used_usd": e.used_usd,
            "exploration_cap_usd": e.cap_usd,
            "exploration_used_pct": e.used_pct,
        }
        w = self.warning
        out |= {
            "early_warning_precision": w.precision,
            "early_warning_recall": w.recall,
            "early_warning_n": w.n_warnings,
            "early_warning_drawdowns_n": w.n_drawdowns,
        }
        out["drawdown_saved_days"] = self.drawdown_days_saved
        return {k: _json_number(v) for k, v in out.items()}


def _json_number(v: float | int) -> float | int | None:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def daily_metrics(
    *,
    segment_returns: Sequence[Sequence[float]] = (),
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
    brier_rows: Iterable[tuple[str, float, bool]] = (),
    vote_decisions: Sequence[Mapping[str, Mapping[str, Any]]] = (),
    predicted_cost_bps: Sequence[float] = (),
    realised_cost_bps: Sequence[float] = (),
    exploration_used_usd: float = 0.0,
    exploration_cap_usd: float = 0.0,
    warnings_ts_ns: Sequence[int] = (),
    equity: Sequence[tuple[int, float]] = (),
    drawdown_threshold_pct: float = 5.0,
    warning_lead_ns: int = NS_PER_DAY,
    equity_without_advisories: Sequence[tuple[int, float]] | None = None,
) -> DailyMetrics:
    """All seven metrics from their inputs; a metric whose inputs are empty is NaN.
    Drawdowns for metric 6 are ``drawdown_starts(equity, drawdown_threshold_pct)``;
    metric 7 is NaN unless the counterfactual ``equity_without_advisories`` is given."""
    mean, std = oos_sharpe(segment_returns, periods_per_year)
    diversity, diversity_n = consensus_diversity(vote_decisions)
    saved = (
        drawdown_days_saved(equity, equity_without_advisories)
        if equity_without_advisories is not None
        else NAN
    )
    return DailyMetrics(
        oos_sharpe_mean=mean,
        oos_sharpe_std=std,
        brier=brier_by_regime(brier_rows),
        diversity=diversity,
        diversity_n=diversity_n,
        slippage=slippage_error(predicted_cost_bps, realised_cost_bps),
        exploration=exploration_budget(exploration_used_usd, exploration_cap_usd),
        warning=early_warning(
            warnings_ts_ns, drawdown_starts(equity, drawdown_threshold_pct), warning_lead_ns
        ),
        drawdown_days_saved=saved,
    )
