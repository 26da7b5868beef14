"""Walk-forward windows in days over an event-time index, and per-segment metrics.

Source: seed 000 §1 (walk-forward testing: 180 days in sample, 30 out of sample, a step
of 30; segment metrics, stability, ``is_robust``) and seed 003 §3 (purged walk-forward:
train 120 days, a purge gap of 3-5 days that removes label overlap, test 30 days,
expanding or rolling). docs/validation.md has the worked rules.

Windows are calendar days in UTC (a weekend is two days like any other), anchored at
midnight UTC of the first observation's day. Segment j (j = 0, 1, ...):

    test  = [D0 + train + purge + j*step,  D0 + train + purge + j*step + test)
    train = [D0 + j*step (rolling) | D0 (expanding),  test start - purge)

Only segments whose test window ends on or before the end of the last observation's day
are kept (no partial test window), and a segment with no observation in its train or its
test window (a gap in the data) is dropped. Indices are positions in the series, which
must be sorted by time. No I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from services.backtest.metrics import (
    DEFAULT_PERIODS_PER_YEAR,
    compound,
    curve_from_returns,
    dispersion,
    max_drawdown_frac,
    sharpe_ratio,
)
from services.backtest.numbers import NAN, NS_PER_DAY

Mode = Literal["rolling", "expanding"]

# is_robust: mean out-of-sample Sharpe > 0 and at least this share of segments with a
# positive Sharpe, over at least MIN_SEGMENTS segments (one segment has no dispersion).
ROBUST_MIN_POSITIVE_FRAC = 0.6
ROBUST_MIN_SEGMENTS = 2
SEGMENT_METRICS = ("sharpe", "total_return", "max_drawdown", "hit_rate")


@dataclass(frozen=True)
class WalkForwardPreset:
    """Window lengths in calendar days; ``purge_days`` between train end and test start."""

    train_days: int
    test_days: int
    step_days: int
    purge_days: int = 0


PRESETS: dict[str, WalkForwardPreset] = {
    # seed 000 §1: in_sample_days=180, out_of_sample_days=30, step_size_days=30
    "seed000": WalkForwardPreset(train_days=180, test_days=30, step_days=30),
    # seed 003 §3: train 120, purge 3-5, test 30. We take 5: any 5 consecutive calendar
    # days hold at least 3 trading days, so a 3-trading-day label horizon is purged even
    # across a weekend, and the 2 extra days cost under 2 % of the 120-day train window.
    "seed003": WalkForwardPreset(train_days=120, test_days=30, step_days=30, purge_days=5),
}


@dataclass(frozen=True)
class WalkForwardSplit:
    """One segment: positions in the series and its window bounds (ns, end exclusive)."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    train_start_ns: int
    train_end_ns: int
    test_start_ns: int
    test_end_ns: int


def walk_forward_splits(
    ts_ns: np.ndarray,
    train_days: int,
    test_days: int,
    step_days: int,
    purge_days: int = 0,
    mode: Mode = "rolling",
) -> list[WalkForwardSplit]:
    """Walk-forward segments over ``ts_ns`` (sorted event times in ns); see the module doc."""
    if min(train_days, test_days, step_days) <= 0 or purge_days < 0:
        raise ValueError("train_days, test_days and step_days must be > 0, purge_days >= 0")
    if mode not in ("rolling", "expanding"):
        raise ValueError(f"mode must be 'rolling' or 'expanding', got {mode!r}")
    ts = np.asarray(ts_ns, dtype=np.int64)
    if ts.size == 0:
        return []
    if np.any(np.diff(ts) < 0):
        raise ValueError("ts_ns must be sorted in time")
    origin_ns = int(ts[0] // NS_PER_DAY) * NS_PER_DAY
    last_end_ns = (int(ts[-1] // NS_PER_DAY) + 1) * NS_PER_DAY
    splits: list[WalkForwardSplit] = []
    j = 0
    while True:
        test_start = origin_ns + (train_days + purge_days + j * step_days) * NS_PER_DAY
        test_end = test_start + test_days * NS_PER_DAY
        if test_end > last_end_ns:
            break
        train_start = origin_ns + (j * step_days * NS_PER_DAY if mode == "rolling" else 0)
        train_end = test_start - purge_days * NS_PER_DAY
        train_idx = _positions(ts, train_start, train_end)
        test_idx = _positions(ts, test_start, test_end)
        if train_idx.size and test_idx.size:
            splits.append(
                WalkForwardSplit(train_idx, test_idx, train_start, train_end, test_start, test_end)
            )
        j += 1
    return splits


def _positions(ts: np.ndarray, start_ns: int, end_ns: int) -> np.ndarray:
    lo, hi = np.searchsorted(ts, [start_ns, end_ns], side="left")
    return np.arange(lo, hi, dtype=np.int64)


def _utc_date(ts_ns: int) -> str:
    """YYYY-MM-DD of an ns timestamp (a window bound is a UTC midnight)."""
    return str(np.datetime64(ts_ns, "ns").astype("datetime64[D]"))


# --- metrics over a strategy's returns ------------------------------------------------


def segment_metrics(
    returns: np.ndarray, periods_per_year: float = DEFAULT_PERIODS_PER_YEAR
) -> dict[str, float]:
    """Metrics of one segment's strategy returns r_t = position_t * asset_return_t.

    sharpe: mean(r) / std(r, ddof=1) * sqrt(P) (services/backtest/metrics.py);
    total_return: prod(1 + r) - 1; max_drawdown: largest fall of cumprod(1 + r) from its
    running peak, as a fraction; hit_rate: share of r > 0 among the periods with r != 0
    (a flat period is neither a hit nor a miss; NaN when every period is flat).
    """
    r = np.asarray(returns, dtype=float)
    traded = r[r != 0]
    return {
        "n_obs": int(r.size),
        "sharpe": sharpe_ratio(r, periods_per_year),
        "total_return": compound(r),
        "max_drawdown": max_drawdown_frac(curve_from_returns(r)),
        "hit_rate": float(np.mean(traded > 0)) if traded.size else NAN,
    }


def stability(sharpes: list[float]) -> dict[str, float]:
    """Mean and std (ddof=1) of the finite segment Sharpes, and the share that are > 0."""
    s = np.asarray([x for x in sharpes if math.isfinite(x)], dtype=float)
    n = int(s.size)
    return {
        "n_segments": n,
        "mean_sharpe": float(s.mean()) if n else NAN,
        "std_sharpe": float(s.std(ddof=1)) if n > 1 else NAN,
        "positive_frac": float(np.mean(s > 0)) if n else NAN,
    }


def is_robust(stab: dict[str, float]) -> bool:
    """Mean OOS Sharpe > 0 and >= 60 % of segments positive, over >= 2 segments."""
    return bool(
        stab["n_segments"] >= ROBUST_MIN_SEGMENTS
        and stab["mean_sharpe"] > 0
        and stab["positive_frac"] >= ROBUST_MIN_POSITIVE_FRAC
    )


def walk_forward_report(
    ts_ns: np.ndarray,
    returns: np.ndarray,
    preset: WalkForwardPreset,
    mode: Mode = "rolling",
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
) -> dict[str, object]:
    """Per-segment out-of-sample metrics, their mean and std, stability and is_robust.

    The strategy returns are fixed (positions come with the data), so the train window is
    reported but not fitted on: the test is whether the edge holds segment after segment.
    """
    r = np.asarray(returns, dtype=float)
    splits = walk_forward_splits(
        ts_ns, preset.train_days, preset.test_days, preset.step_days, preset.purge_days, mode
    )
    metrics = [segment_metrics(r[sp.test_idx], periods_per_year) for sp in splits]
    segments = [
        {
            "test_start_utc": _utc_date(sp.test_start_ns),
            "test_end_utc": _utc_date(sp.test_end_ns),
            "train_start_ns": sp.train_start_ns,
            "train_end_ns": sp.train_end_ns,
            "test_start_ns": sp.test_start_ns,
            "test_end_ns": sp.test_end_ns,
            "n_train": int(sp.train_idx.size),
            **m,
        }
        for sp, m in zip(splits, metrics, strict=True)
    ]
    # seed 003 §3: mean and dispersion (std, min, max, median) of every metric
    summary = {k: dispersion(m[k] for m in metrics) for k in SEGMENT_METRICS}
    stab = stability([m["sharpe"] for m in metrics])
    # seed 003 §3: stability across years; a segment belongs to its test start's year
    years = [int(_utc_date(sp.test_start_ns)[:4]) for sp in splits]
    by_year = {
        str(y): dispersion(m["sharpe"] for m, yy in zip(metrics, years, strict=True) if yy == y)
        for y in sorted(set(years))
    }
    return {
        "mode": mode,
        "train_days": preset.train_days,
        "test_days": preset.test_days,
        "step_days": preset.step_days,
        "purge_days": preset.purge_days,
        "periods_per_year": periods_per_year,
        "segments": segments,
        "summary": summary,
        "sharpe_by_year": by_year,
        "stability": stab,
        "is_robust": is_robust(stab),
        "robust_rule": "mean OOS Sharpe > 0 and >= 60 % of segments with Sharpe > 0, >= 2 segments",
    }
