"""Robustness of a backtest to noise in its prices (seed 000 §1, "Robustness Analyzer").

Question: does the strategy's result survive small perturbations of the market it was
tested on, and does it depend on the random draw? A result that changes sign under noise
of 1 % of a return's size was fitted to the noise, not to the market.

Noise (``perturb_quotes``): per symbol, the log returns of the mid, r_t = ln(m_t / m_{t-1}),
get zero-mean Gaussian noise at a fraction ``level`` of their standard deviation,

    r'_t = r_t + e_t,   e_t ~ N(0, (level * std(r, ddof=1))^2),   m'_0 = m_0,
    m'_t = m'_{t-1} * exp(r'_t),

and each quote keeps its bid/ask spread: bid' = m'_t - (ask - bid) / 2, ask' = m'_t +
(ask - bid) / 2 (``last``, ``open``, ``high``, ``low`` scale by m'_t / m_t). The draw is
``numpy.random.default_rng(seed)``, symbols in sorted order: the same seed gives the same
quotes. Quotes without a finite positive mid are left as they are (the quality gate names
them) and are not part of any return.

Runs: the clean run (level 0) once, then ``n_seeds`` noisy runs per level; ``run(quotes)``
is the caller's backtest, returning ``RunMetrics`` (Sharpe and net PnL). Per level: mean and
std (ddof=1; 0 for one run), min and max of both.

Score (``robustness_score``), with S_0 the clean Sharpe and S_k a noisy run's Sharpe: a
noisy run *holds* when it keeps the clean run's sign and stays within ``SHARPE_BAND`` (50 %)
of it,

    holds_k = sign(S_k) = sign(S_0)  and  |S_k - S_0| <= SHARPE_BAND * |S_0|,

and the score is the fraction of noisy runs that hold, in [0, 1]. A clean Sharpe <= 0 (or
not finite) scores 0: there is no edge to keep. Recommendation: ``ROBUST`` when score >=
0.8, ``FRAGILE`` when 0.5 <= score < 0.8, ``NOT_ROBUST`` below 0.5 (``ROBUST_MIN_SCORE``,
``FRAGILE_MIN_SCORE``). docs/validation.md, "Robustness", has the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from services.backtest.metrics import sharpe_ratio
from services.validation.permutation import periods_per_year_from_ts
from shared.messages import RawQuote

FloatArray = npt.NDArray[np.float64]

DEFAULT_LEVELS = (0.01, 0.05, 0.10)  # fractions of the returns' std (seed 000 §1)
DEFAULT_SEEDS = 3
SHARPE_BAND = 0.5  # a noisy Sharpe within 50 % of the clean one holds
ROBUST_MIN_SCORE = 0.8
FRAGILE_MIN_SCORE = 0.5

NULL_DESCRIPTION = (
    "H0: the result is a property of the market, not of its noise; per-symbol log returns of "
    "the mid get N(0, (level * std)^2) noise, spreads kept; a run holds when its Sharpe keeps "
    "the clean sign and stays within {band:.0%} of the clean Sharpe"
)


@dataclass(frozen=True)
class RunMetrics:
    sharpe: float
    net_pnl_usd: float
    fills: int = 0


Runner = Callable[[Sequence[RawQuote]], RunMetrics]


def _mid(q: RawQuote) -> float:
    return (q.bid + q.ask) / 2.0


def _valid_mid(q: RawQuote) -> bool:
    m = _mid(q)
    return math.isfinite(m) and m > 0 and math.isfinite(q.bid) and math.isfinite(q.ask)


def noisy_log_mids(
    log_mids: FloatArray, level: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """(ln m' per quote, the noise e_t per return) for one symbol's log mids (module doc)."""
    r = np.diff(log_mids)
    if r.size < 2 or level <= 0:
        return log_mids.copy(), np.zeros(r.size)
    sigma = float(np.std(r, ddof=1))
    noise = rng.normal(0.0, level * sigma, size=r.size)
    out = np.empty_like(log_mids)
    out[0] = log_mids[0]
    out[1:] = log_mids[0] + np.cumsum(r + noise)
    return out, noise


def perturb_quotes(quotes: Sequence[RawQuote], level: float, seed: int) -> list[RawQuote]:
    """The quotes with return noise at ``level`` of each symbol's return std (module doc)."""
    if level <= 0:
        return list(quotes)
    rng = np.random.default_rng(seed)
    by_symbol: dict[str, list[int]] = {}
    for i, q in enumerate(quotes):
        if _valid_mid(q):
            by_symbol.setdefault(q.symbol, []).append(i)
    out = list(quotes)
    for symbol in sorted(by_symbol):
        idx = by_symbol[symbol]
        log_mids = np.log(np.array([_mid(quotes[i]) for i in idx], dtype=np.float64))
        new_log, _ = noisy_log_mids(log_mids, level, rng)
        for i, old_log, new in zip(idx, log_mids, new_log, strict=True):
            q = quotes[i]
            mid, ratio = math.exp(new), math.exp(new - old_log)
            half = (q.ask - q.bid) / 2.0
            update: dict[str, Any] = {"bid": mid - half, "ask": mid + half}
            for name in ("last", "open", "high", "low"):
                value = getattr(q, name)
                if value is not None:
                    update[name] = value * ratio
            out[i] = q.model_copy(update=update)
    return out


def equity_sharpe(ts_ns: npt.ArrayLike, equity_usd: npt.ArrayLike) -> float:
    """Annualised Sharpe of the equity marks' simple returns e_i / e_{i-1} - 1, annualised
    at the observed rate P = (n - 1) / span in years (permutation.periods_per_year_from_ts);
    0 when fewer than three marks or the returns are constant (no risk taken)."""
    eq = np.asarray(equity_usd, dtype=np.float64)
    ts = np.asarray(ts_ns, dtype=np.int64)
    if eq.size < 3 or np.any(eq[:-1] <= 0):
        return 0.0
    r = eq[1:] / eq[:-1] - 1.0
    s = sharpe_ratio(r, periods_per_year_from_ts(ts[1:]))
    return float(s) if math.isfinite(s) else 0.0


def _stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(np.mean(a)),
        "std": float(np.std(a, ddof=1)) if a.size > 1 else 0.0,
        "min": float(np.min(a)),
        "max": float(np.max(a)),
    }


def holds(clean_sharpe: float, noisy_sharpe: float, band: float = SHARPE_BAND) -> bool:
    """Same sign as the clean Sharpe and within ``band`` of it (module doc)."""
    if not (math.isfinite(clean_sharpe) and math.isfinite(noisy_sharpe)) or clean_sharpe <= 0:
        return False
    return noisy_sharpe > 0 and abs(noisy_sharpe - clean_sharpe) <= band * abs(clean_sharpe)


def robustness_score(
    clean_sharpe: float, noisy_sharpes: Sequence[float], band: float = SHARPE_BAND
) -> float:
    """Fraction of the noisy runs that hold; 0 with no run or a clean Sharpe <= 0."""
    if not noisy_sharpes:
        return 0.0
    return sum(holds(clean_sharpe, s, band) for s in noisy_sharpes) / len(noisy_sharpes)


def recommendation(score: float) -> str:
    if score >= ROBUST_MIN_SCORE:
        return "ROBUST"
    if score >= FRAGILE_MIN_SCORE:
        return "FRAGILE"
    return "NOT_ROBUST"


@dataclass(frozen=True)
class LevelResult:
    level: float
    seeds: list[int]
    sharpe: dict[str, float]
    net_pnl_usd: dict[str, float]
    runs: list[RunMetrics]
    score: float


@dataclass(frozen=True)
class RobustnessResult:
    clean: RunMetrics
    levels: list[LevelResult]
    robustness_score: float
    recommendation: str
    sharpe_band: float = SHARPE_BAND
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"ROBUST": ROBUST_MIN_SCORE, "FRAGILE": FRAGILE_MIN_SCORE}
    )

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["null_hypothesis"] = NULL_DESCRIPTION.format(band=self.sharpe_band)
        doc["n_noisy_runs"] = sum(len(lv.runs) for lv in self.levels)
        return doc


def analyse(
    quotes: Sequence[RawQuote],
    run: Runner,
    levels: Sequence[float] = DEFAULT_LEVELS,
    n_seeds: int = DEFAULT_SEEDS,
    seed: int = 0,
    band: float = SHARPE_BAND,
) -> RobustnessResult:
    """The clean run, then ``n_seeds`` noisy runs per level with noise seeds seed..seed+n-1."""
    clean = run(quotes)
    seeds = [seed + k for k in range(n_seeds)]
    out: list[LevelResult] = []
    all_sharpes: list[float] = []
    for level in levels:
        runs = [run(perturb_quotes(quotes, level, s)) for s in seeds]
        sharpes = [r.sharpe for r in runs]
        all_sharpes += sharpes
        out.append(
            LevelResult(
                level=float(level),
                seeds=seeds,
                sharpe=_stats(sharpes),
                net_pnl_usd=_stats([r.net_pnl_usd for r in runs]),
                runs=runs,
                score=robustness_score(clean.sharpe, sharpes, band),
            )
        )
    score = robustness_score(clean.sharpe, all_sharpes, band)
    return RobustnessResult(clean, out, score, recommendation(score), band)
