"""Purged K-fold and combinatorial purged cross-validation (CPCV) with purge and embargo.

Source: López de Prado, *Advances in Financial Machine Learning* (2018), ch. 7 (purged
K-fold, embargo) and ch. 12 (CPCV, backtest paths); seed 003 §3 (combinatorial purged
K-fold for model selection). Definitions follow skfolio's ``CombinatorialPurgedCV``
(1.12) exactly, and tests/unit/test_validate_splits.py checks the indices against it:

- folds: n observations cut into N consecutive folds of m = n // N, the last fold
  taking the remainder (fold of position i = min(i // m, N - 1));
- splits: every choice of k test folds out of N, in lexicographic order: C(N, k) splits;
  adjacent test folds form one test block;
- purge: ``purge`` observations removed from training right BEFORE each test block (their
  labels reach into the test) and ``purge`` right AFTER it;
- embargo: ``embargo`` more observations removed right after each test block (after the
  purge), for serial correlation; so after a block purge + embargo observations go;
- rule: purge + embargo < m - 1 (skfolio's own check), else ValueError;
- paths: each fold is a test fold in C(N-1, k-1) splits; path p takes fold f's test
  returns from the p-th of them, so phi = k / N * C(N, k) paths each cover the whole
  series once.

k = 1 is purged K-fold (N splits, one path); skfolio accepts only k >= 2, N >= 3.
No I/O here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from services.backtest.metrics import DEFAULT_PERIODS_PER_YEAR, dispersion, sharpe_ratio


@dataclass(frozen=True)
class CPCVSplit:
    """One split: training positions, and its test folds with their positions."""

    train_idx: np.ndarray
    test_folds: tuple[int, ...]
    test_idx: list[np.ndarray]  # one array per test fold, in fold order


def n_splits(n_folds: int, n_test_folds: int) -> int:
    """C(N, k)."""
    return math.comb(n_folds, n_test_folds)


def n_paths(n_folds: int, n_test_folds: int) -> int:
    """phi = k / N * C(N, k) = C(N - 1, k - 1) backtest paths (AFML ch. 12.4)."""
    return n_splits(n_folds, n_test_folds) * n_test_folds // n_folds


def fold_of(n_obs: int, n_folds: int) -> np.ndarray:
    """Fold number of each position: min(i // (n // N), N - 1)."""
    m = n_obs // n_folds
    return np.minimum(np.arange(n_obs) // m, n_folds - 1)


def cpcv_splits(
    n_obs: int, n_folds: int, n_test_folds: int, purge: int = 0, embargo: int = 0
) -> list[CPCVSplit]:
    """The C(N, k) purged and embargoed splits of ``n_obs`` observations (module doc)."""
    _check(n_obs, n_folds, n_test_folds, purge, embargo)
    folds = fold_of(n_obs, n_folds)
    fold_idx = [np.flatnonzero(folds == f) for f in range(n_folds)]
    splits = []
    for test_folds in itertools.combinations(range(n_folds), n_test_folds):
        test = np.isin(folds, test_folds)
        dropped = np.zeros(n_obs, dtype=bool)
        edges = np.diff(test.astype(np.int8))
        for start in np.flatnonzero(edges == 1) + 1:  # first position of a test block
            dropped[max(0, start - purge) : start] = True
        for end in np.flatnonzero(edges == -1):  # last position of a test block
            dropped[end + 1 : end + 1 + purge + embargo] = True
        train = np.flatnonzero(~test & ~dropped)
        splits.append(CPCVSplit(train, test_folds, [fold_idx[f] for f in test_folds]))
    return splits


def purged_kfold_splits(
    n_obs: int, n_folds: int, purge: int = 0, embargo: int = 0
) -> list[CPCVSplit]:
    """Purged K-fold (AFML ch. 7.4): CPCV with one test fold per split."""
    return cpcv_splits(n_obs, n_folds, 1, purge, embargo)


def path_splits(n_folds: int, n_test_folds: int) -> np.ndarray:
    """(N, phi) array: entry [f, p] is the split whose test fold f belongs to path p.

    Splits are numbered in ``cpcv_splits`` order; as skfolio's ``recombined_paths``.
    """
    combos = list(itertools.combinations(range(n_folds), n_test_folds))
    per_fold = [[i for i, c in enumerate(combos) if f in c] for f in range(n_folds)]
    return np.asarray(per_fold, dtype=np.int64).reshape(n_folds, -1)


def _check(n_obs: int, n_folds: int, n_test_folds: int, purge: int, embargo: int) -> None:
    if n_folds < 2 or not 1 <= n_test_folds < n_folds:
        raise ValueError(
            f"need n_folds >= 2 and 1 <= n_test_folds < n_folds, got "
            f"n_folds={n_folds}, n_test_folds={n_test_folds}"
        )
    if purge < 0 or embargo < 0:
        raise ValueError("purge and embargo must be >= 0")
    m = n_obs // n_folds
    if m < 1:
        raise ValueError(f"{n_obs} observations cannot fill {n_folds} folds")
    if purge + embargo >= m - 1:
        raise ValueError(
            f"purge + embargo ({purge + embargo}) must be < fold size - 1 (fold size {m})"
        )


# --- backtest paths of a strategy -----------------------------------------------------

# (returns, train_idx, test_idx) -> the strategy's returns over test_idx
Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def fit_none(returns: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
    """Positions fixed by the data: every path is the whole series (Sharpe dispersion 0)."""
    return returns[test_idx]


def fit_sign(returns: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
    """Trade the positions in the direction of their training edge: sign(mean r_train) * r.

    A one-parameter model, so a real edge keeps its sign on every split and a spurious one
    flips: the spread of the path Sharpes shows it.
    """
    return float(np.sign(np.mean(returns[train_idx]))) * returns[test_idx]


FITS: dict[str, Fit] = {"none": fit_none, "sign": fit_sign}


def cpcv_report(
    returns: np.ndarray,
    n_folds: int,
    n_test_folds: int,
    purge: int = 0,
    embargo: int = 0,
    fit: str = "none",
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
) -> dict[str, object]:
    """Split and path counts, per-split test Sharpe and per-path Sharpe (mean, std ddof=1, min, max, median).

    Each split's strategy returns on its test folds come from ``FITS[fit]`` trained on
    that split's purged training set; path p strings fold 0..N-1 from ``path_splits``.
    """
    r = np.asarray(returns, dtype=float)
    splits = cpcv_splits(r.size, n_folds, n_test_folds, purge, embargo)
    fitter = FITS[fit]
    # oos[i][f]: split i's strategy returns on its test fold f
    oos: list[dict[int, np.ndarray]] = []
    split_sharpes = []
    for sp in splits:
        by_fold = {
            f: fitter(r, sp.train_idx, idx)
            for f, idx in zip(sp.test_folds, sp.test_idx, strict=True)
        }
        oos.append(by_fold)
        split_sharpes.append(sharpe_ratio(np.concatenate(list(by_fold.values())), periods_per_year))
    paths = path_splits(n_folds, n_test_folds)
    path_sharpes = [
        sharpe_ratio(
            np.concatenate([oos[paths[f, p]][f] for f in range(n_folds)]), periods_per_year
        )
        for p in range(paths.shape[1])
    ]
    return {
        "n_obs": int(r.size),
        "n_folds": n_folds,
        "n_test_folds": n_test_folds,
        "purge": purge,
        "embargo": embargo,
        "fit": fit,
        "periods_per_year": periods_per_year,
        "n_splits": len(splits),
        "n_paths": int(paths.shape[1]),
        "train_sizes": [int(sp.train_idx.size) for sp in splits],
        "split_sharpe": dispersion(split_sharpes),
        "path_sharpes": path_sharpes,
        "path_sharpe": dispersion(path_sharpes),
    }
