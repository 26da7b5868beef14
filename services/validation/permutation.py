"""Permutation test of a strategy's edge (seed 000 §1; White 2000, Aronson 2006 ch. 5).

Null hypothesis H0: the positions carry no information about the later returns. Under
H0 any re-pairing of the position series with the asset-return series is as likely as the
observed one, so the observed statistic is one draw from the distribution of the statistic
over re-pairings.

Shuffling the order of a fixed set of *trade* returns leaves their mean and standard
deviation, hence their Sharpe and their sum, unchanged: that null is empty. This test breaks
the link between positions and returns instead. The strategy return of period t is

    r_t = position_t * asset_return_t

(position_t: the position held over period t as a fraction of capital, signed; asset_return_t:
the asset's simple return over the same period). A permutation draws pi and computes the
statistic of r*_t = position_pi(t) * asset_return_t:

- ``method="shuffle"``: pi a uniform random permutation of the periods (exchangeable
  positions; the permutation test of independence, scipy's ``permutation_type="pairings"``);
- ``method="shift"``: pi(t) = (t + k) mod n with k uniform in 1..n-1, a circular block shift
  that keeps the positions' own autocorrelation (holding times) and only moves them against
  the returns (n - 1 distinct re-pairings, so use it with n > 1000 for a 1 % test).

Statistics, on the strategy returns r_t, t = 1..n:

- annualised Sharpe = mean(r) / std(r, ddof=1) * sqrt(P), P periods per year (0 when
  std = 0). P is a parameter; ``periods_per_year_from_ts`` gives P = (n - 1) / span in years
  of 365.25 days (the observed rate: about 252 for trading-day bars, 365.25 for 24/7 days);
- total return = sum(r) (a fixed-capital book, not compounded: the fraction of capital won).

p-value (one-sided, "greater"; the Monte Carlo convention of Phipson & Smyth 2010 and of
``scipy.stats.permutation_test``, which counts the observed pairing as one of the draws):

    p = (1 + #{j : S*_j >= S_obs}) / (1 + N)

so p lies in [1 / (N + 1), 1] and never is 0. ``>=`` takes a tolerance of 1e-12 of the statistic's
scale so that a re-pairing equal to the observed one counts as a tie despite rounding. The percentile
rank is 100 * #{j : S*_j < S_obs} / N. The test passes at the 99th percentile:
``is_significant`` is p_sharpe <= 0.01 (``alpha``). Under H0, P(p <= 0.01) = 10 / 1001 for
N = 1000 and a continuous statistic, i.e. a false-positive rate of 1 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Method = Literal["shuffle", "shift"]

SECONDS_PER_YEAR = 365.25 * 86_400.0
DEFAULT_PERMUTATIONS = 1000
DEFAULT_ALPHA = 0.01  # pass at the 99th percentile (seed 000 §1)
TIE_RTOL = 1e-12
# permuted strategy returns are computed in chunks of at most this many cells (8 bytes each)
MAX_CHUNK_CELLS = 4_000_000

NULL_DESCRIPTION = (
    "H0: positions carry no information about the later asset returns; "
    "positions are re-paired with returns at random ({method}), r_t = position_t * asset_return_t"
)


@dataclass(frozen=True)
class PermutationResult:
    observed_sharpe: float
    observed_return: float
    p_value_sharpe: float
    percentile_rank_sharpe: float
    p_value_return: float
    percentile_rank_return: float
    is_significant: bool
    alpha: float
    n_permutations: int
    n_periods: int
    periods_per_year: float
    seed: int
    method: str
    null: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def annualised_sharpe(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """mean / std(ddof=1) * sqrt(P) along the last axis; 0 where std is 0 (or n < 2)."""
    r = np.asarray(returns, dtype=np.float64)
    n = r.shape[-1]
    if n < 2:
        return np.zeros(r.shape[:-1])
    mean = r.mean(axis=-1)
    std = r.std(axis=-1, ddof=1)
    # a constant series (std 0 up to rounding) has no Sharpe: 0, not mean / 1e-18
    flat = std <= 1e-12 * np.maximum(np.abs(mean), np.finfo(np.float64).tiny)
    safe = np.where(flat, 1.0, std)
    return np.where(flat, 0.0, mean / safe * np.sqrt(periods_per_year))


def total_return(returns: FloatArray) -> FloatArray:
    """sum of the period returns along the last axis (fixed capital, not compounded)."""
    return np.asarray(returns, dtype=np.float64).sum(axis=-1)


def periods_per_year_from_ts(ts_ns: npt.ArrayLike) -> float:
    """(n - 1) / span in years: the observed sampling rate. 1.0 when it cannot be told."""
    ts = np.asarray(ts_ns, dtype=np.float64)
    if ts.size < 2:
        return 1.0
    span_s = (float(ts.max()) - float(ts.min())) / 1e9
    if span_s <= 0:
        return 1.0
    return (ts.size - 1) / (span_s / SECONDS_PER_YEAR)


def _tie_tolerance(observed: float, null: FloatArray) -> float:
    """TIE_RTOL of the statistic's scale (the largest |value| seen), so that rounding noise
    in a tied re-pairing does not decide the comparison, whatever the returns' unit."""
    scale = max(abs(observed), float(np.abs(null).max()) if null.size else 0.0)
    return TIE_RTOL * scale


def p_value(observed: float, null: FloatArray) -> float:
    """(1 + #{null >= observed}) / (1 + N), ties within TIE_RTOL counted as >=."""
    tol = _tie_tolerance(observed, null)
    k = int(np.count_nonzero(null >= observed - tol))
    return (1 + k) / (1 + null.size)


def percentile_rank(observed: float, null: FloatArray) -> float:
    """100 * #{null < observed} / N (ties excluded, the same tolerance as the p-value)."""
    tol = _tie_tolerance(observed, null)
    return 100.0 * int(np.count_nonzero(null < observed - tol)) / max(null.size, 1)


def permutation_indices(
    n: int, n_permutations: int, rng: np.random.Generator, method: Method
) -> npt.NDArray[np.intp]:
    """(n_permutations, n) index rows: row j re-pairs position[idx[j, t]] with return t."""
    if method == "shuffle":
        return rng.permuted(np.tile(np.arange(n), (n_permutations, 1)), axis=1)
    if method == "shift":
        if n < 2:
            return np.zeros((n_permutations, n), dtype=np.intp)
        k = rng.integers(1, n, size=n_permutations)
        return (np.arange(n)[None, :] + k[:, None]) % n
    raise ValueError(f"method must be 'shuffle' or 'shift', not {method!r}")


def null_distributions(
    positions: FloatArray,
    asset_returns: FloatArray,
    *,
    n_permutations: int,
    periods_per_year: float,
    rng: np.random.Generator,
    method: Method = "shuffle",
) -> tuple[FloatArray, FloatArray]:
    """Sharpe and total return of every permuted pairing (two arrays of n_permutations)."""
    n = positions.size
    sharpe = np.empty(n_permutations)
    ret = np.empty(n_permutations)
    chunk = max(1, MAX_CHUNK_CELLS // max(n, 1))
    for start in range(0, n_permutations, chunk):
        rows = min(chunk, n_permutations - start)
        idx = permutation_indices(n, rows, rng, method)
        strat = positions[idx] * asset_returns[None, :]
        sharpe[start : start + rows] = annualised_sharpe(strat, periods_per_year)
        ret[start : start + rows] = total_return(strat)
    return sharpe, ret


def permutation_test(
    positions: npt.ArrayLike,
    asset_returns: npt.ArrayLike,
    *,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    periods_per_year: float = 252.0,
    method: Method = "shuffle",
    alpha: float = DEFAULT_ALPHA,
) -> PermutationResult:
    """The test of the module docstring on one position series and one return series."""
    pos = np.asarray(positions, dtype=np.float64)
    ar = np.asarray(asset_returns, dtype=np.float64)
    if pos.shape != ar.shape or pos.ndim != 1:
        raise ValueError(f"positions {pos.shape} and asset_returns {ar.shape} must be 1-d, equal")
    if n_permutations < 1:
        raise ValueError("n_permutations must be >= 1")
    if not (np.isfinite(pos).all() and np.isfinite(ar).all()):
        raise ValueError("positions and asset_returns must be finite")
    strat = pos * ar
    obs_sharpe = float(annualised_sharpe(strat, periods_per_year))
    obs_return = float(total_return(strat))
    rng = np.random.default_rng(seed)
    null_sharpe, null_return = null_distributions(
        pos,
        ar,
        n_permutations=n_permutations,
        periods_per_year=periods_per_year,
        rng=rng,
        method=method,
    )
    p_sharpe = p_value(obs_sharpe, null_sharpe)
    return PermutationResult(
        observed_sharpe=obs_sharpe,
        observed_return=obs_return,
        p_value_sharpe=p_sharpe,
        percentile_rank_sharpe=percentile_rank(obs_sharpe, null_sharpe),
        p_value_return=p_value(obs_return, null_return),
        percentile_rank_return=percentile_rank(obs_return, null_return),
        is_significant=p_sharpe <= alpha,
        alpha=alpha,
        n_permutations=n_permutations,
        n_periods=int(pos.size),
        periods_per_year=float(periods_per_year),
        seed=seed,
        method=method,
        null=NULL_DESCRIPTION.format(method=method),
    )


def p_values_many(
    positions: FloatArray,
    asset_returns: FloatArray,
    *,
    n_permutations: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Sharpe p-values of many independent experiments at once, rows of (m, n) arrays,
    shuffle method (the vectorised form of ``permutation_test``, for false-positive-rate
    studies). Annualisation does not move a p-value, so P = 1 here."""
    pos = np.asarray(positions, dtype=np.float64)
    ar = np.asarray(asset_returns, dtype=np.float64)
    m, n = pos.shape
    obs = annualised_sharpe(pos * ar, 1.0)  # (m,)
    idx = rng.permuted(np.tile(np.arange(n), (m, n_permutations, 1)), axis=2)
    perm_pos = np.take_along_axis(pos[:, None, :], idx, axis=2)
    null = annualised_sharpe(perm_pos * ar[:, None, :], 1.0)  # (m, N)
    tol = TIE_RTOL * np.maximum(np.abs(obs), np.abs(null).max(axis=1))
    k = np.count_nonzero(null >= (obs - tol)[:, None], axis=1)
    return (1 + k) / (1 + n_permutations)
