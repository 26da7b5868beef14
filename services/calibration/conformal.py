"""Conformal prediction intervals for an edge forecast, and the runner gate (seed 002).

Seed 002 (``conformal_gating.py``: "distribution-free error guarantees", "adaptive intervals
(feature-conditional)"; "enable conformal gating: require pessimistic case to beat costs")
gates the strict runner book on the worst case of a prediction interval. Everything is in
basis points: ``predicted`` is the forecast edge (bps), ``realised`` the edge the trade would
have earned over the same horizon (bps).

Split conformal (Vovk, Gammerman & Shafer 2005; Lei, G'Sell, Rinaldo, Tibshirani & Wasserman
2018, "Distribution-Free Predictive Inference for Regression", §2.2). On a calibration set of
n pairs, the nonconformity score is s_i = |realised_i - predicted_i| and

    k = ceil((n + 1) * (1 - alpha)),     q = s_(k)  (the k-th smallest score),
    q = +inf                             when k > n, i.e. n < 1 / alpha - 1,

i.e. the k / n empirical quantile in the inverse-CDF sense (numpy ``method="inverted_cdf"``,
or ``method="lower"`` at level k / n as MAPIE computes it; numpy's default linear
interpolation sits between order statistics and loses the guarantee). The interval of a new
forecast p is [p - q, p + q]. If the calibration pairs and the new pair are exchangeable,
P(realised in [p - q, p + q]) >= 1 - alpha, and <= 1 - alpha + 1 / (n + 1) when the scores
have no ties. The guarantee is *marginal*: averaged over calibration sets and new
points, not conditional on a given p, regime or calibration set (the coverage given one
calibration set is Beta(k, n + 1 - k) distributed). The plain 1 - alpha empirical quantile
under-covers by up to 1 / (n + 1).

Normalised ("adaptive", feature-conditional) conformal (Lei et al. 2018 §5.2; Papadopoulos et
al. 2002): s_i = |realised_i - predicted_i| / sigma_i with sigma_i > 0 a scale feature the
caller supplies (the ensemble's spread, volatility), interval p -+ q * sigma. The same marginal
guarantee; intervals are narrow where sigma is small. Mondrian (group-conditional) conformal
(Vovk et al. 2005 §4.5): one quantile per group key g (e.g. the regime) from that group's
scores only, so P(covered | group = g) >= 1 - alpha for each g; a group with fewer than
``min_group_size`` calibration points uses the pooled quantile (marginal guarantee only).

``OnlineConformal`` keeps the last ``window`` scores (what risk keeps per symbol and horizon);
a sliding window assumes the recent scores and the next one are exchangeable, which drift can
break: the guarantee is then approximate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_ALPHA = 0.1  # 90 % intervals
DEFAULT_WINDOW = 500  # resolved predictions kept per symbol / horizon
# a group's own quantile needs this many calibration scores: at alpha = 0.1 the 46th of 50,
# about 5 scores in the tail; fewer make the per-group quantile too noisy to beat the pooled one
DEFAULT_MIN_GROUP_SIZE = 50
# (n + 1)(1 - alpha) is computed in floating point: 20 * 0.9 must give k = 18, not 19
_RANK_EPS = 1e-9


def _check_alpha(alpha: float) -> float:
    """alpha as a float, or ValueError outside (0, 1)."""
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    return float(alpha)


def conformal_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)): the rank of the conformal quantile among n scores."""
    return math.ceil((n + 1) * (1.0 - _check_alpha(alpha)) - _RANK_EPS)


def min_calibration_size(alpha: float) -> int:
    """The smallest n with a finite quantile (k <= n): ceil(1 / alpha - 1); 9 at alpha 0.1."""
    n = 0
    while conformal_rank(n, alpha) > n:
        n += 1
    return n


def conformal_quantile(scores: npt.ArrayLike, alpha: float) -> float:
    """The k-th smallest of n scores, k = ceil((n + 1)(1 - alpha)); +inf when k > n.

    Equals ``np.quantile(scores, k / n, method="lower")`` (MAPIE's split quantile)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not np.all(np.isfinite(s)):
        raise ValueError("conformal scores must be finite")
    k = conformal_rank(s.size, alpha)
    if k > s.size:
        return math.inf
    return float(np.partition(s, k - 1)[k - 1])


def _pairs(predicted: npt.ArrayLike, realised: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Flat float arrays of equal length, all finite, or ValueError."""
    p = np.asarray(predicted, dtype=np.float64).ravel()
    r = np.asarray(realised, dtype=np.float64).ravel()
    if p.shape != r.shape:
        raise ValueError(f"predicted and realised differ in length: {p.size} != {r.size}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(r))):
        raise ValueError("predicted and realised edges must be finite")
    return p, r


def _scales(sigma: npt.ArrayLike, size: int, sigma_floor: float) -> FloatArray:
    """max(sigma, sigma_floor), broadcast to ``size``; each must be finite and > 0."""
    s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (size,)).copy()
    s = np.maximum(s, sigma_floor)
    if not (np.all(np.isfinite(s)) and np.all(s > 0.0)):
        raise ValueError(
            "sigma must be finite and > 0 (set sigma_floor for a spread that can be 0)"
        )
    return s


class SplitConformal:
    """Split conformal interval p -+ q, q the conformal quantile of |realised - predicted|."""

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        self.alpha = _check_alpha(alpha)
        self.n_calibration = 0
        self.quantile_bps = math.inf  # unfitted: n = 0 is "too small", the interval is infinite

    def fit(self, predicted: npt.ArrayLike, realised: npt.ArrayLike) -> SplitConformal:
        """q = the conformal quantile of |realised - predicted| over the calibration pairs."""
        p, r = _pairs(predicted, realised)
        self.n_calibration = p.size
        self.quantile_bps = conformal_quantile(np.abs(r - p), self.alpha)
        return self

    def interval(self, predicted: float) -> tuple[float, float]:
        """(low, high) = (p - q, p + q) in bps."""
        return predicted - self.quantile_bps, predicted + self.quantile_bps

    def intervals(self, predicted: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """The vectorised ``interval``: arrays (low, high)."""
        p = np.asarray(predicted, dtype=np.float64)
        return p - self.quantile_bps, p + self.quantile_bps


def _grouped_quantiles(
    scores: FloatArray, groups: Sequence[str | None], alpha: float, min_group_size: int
) -> dict[str, float]:
    """Mondrian quantiles: one per group key with at least ``min_group_size`` scores."""
    labels = np.asarray([("" if g is None else str(g)) for g in groups], dtype=object)
    has_key = np.asarray([g is not None for g in groups], dtype=bool)
    out: dict[str, float] = {}
    for key in sorted({str(g) for g in groups if g is not None}):
        mine = scores[(labels == key) & has_key]
        if mine.size >= min_group_size:
            out[key] = conformal_quantile(mine, alpha)
    return out


class AdaptiveConformal:
    """Normalised conformal, optionally Mondrian: p -+ q_g * sigma.

    Scores |realised - predicted| / max(sigma, sigma_floor); q_g the conformal quantile of the
    scores of group g when it has >= ``min_group_size`` of them, else the pooled quantile.
    Without groups (or with ``group=None``) it is the pooled normalised interval."""

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
        sigma_floor: float = 0.0,
    ) -> None:
        self.alpha = _check_alpha(alpha)
        self.min_group_size = max(int(min_group_size), min_calibration_size(alpha))
        self.sigma_floor = float(sigma_floor)
        self.n_calibration = 0
        self.pooled_quantile = math.inf
        self.group_quantiles: dict[str, float] = {}
        self.group_sizes: dict[str, int] = {}

    def fit(
        self,
        predicted: npt.ArrayLike,
        realised: npt.ArrayLike,
        sigma: npt.ArrayLike,
        groups: Sequence[str | None] | None = None,
    ) -> AdaptiveConformal:
        """Pooled q of the normalised scores, and q_g per group with >= min_group_size."""
        p, r = _pairs(predicted, realised)
        scores = np.abs(r - p) / _scales(sigma, p.size, self.sigma_floor)
        self.n_calibration = p.size
        self.pooled_quantile = conformal_quantile(scores, self.alpha)
        if groups is None:
            self.group_quantiles, self.group_sizes = {}, {}
            return self
        if len(groups) != p.size:
            raise ValueError(f"groups has {len(groups)} keys for {p.size} pairs")
        self.group_sizes = {}
        for g in groups:
            if g is not None:
                self.group_sizes[str(g)] = self.group_sizes.get(str(g), 0) + 1
        self.group_quantiles = _grouped_quantiles(scores, groups, self.alpha, self.min_group_size)
        return self

    def quantile(self, group: str | None = None) -> float:
        """q of ``group``: its own when it had enough calibration scores, else the pooled one."""
        if group is None:
            return self.pooled_quantile
        return self.group_quantiles.get(str(group), self.pooled_quantile)

    def interval(
        self, predicted: float, sigma: float = 1.0, group: str | None = None
    ) -> tuple[float, float]:
        """(low, high) = p -+ q_group * max(sigma, sigma_floor), in bps."""
        half = self.quantile(group) * float(_scales(sigma, 1, self.sigma_floor)[0])
        return predicted - half, predicted + half

    def intervals(
        self,
        predicted: npt.ArrayLike,
        sigma: npt.ArrayLike,
        groups: Sequence[str | None] | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """The vectorised ``interval``: arrays (low, high)."""
        p = np.asarray(predicted, dtype=np.float64).ravel()
        s = _scales(sigma, p.size, self.sigma_floor)
        if groups is None:
            q = np.full(p.size, self.pooled_quantile)
        else:
            q = np.asarray([self.quantile(g) for g in groups], dtype=np.float64)
        return p - q * s, p + q * s


class OnlineConformal:
    """Normalised Mondrian conformal over the last ``window`` resolved predictions.

    ``update`` appends the score |realised - predicted| / max(sigma, sigma_floor) of one
    resolved prediction with its group key; the oldest falls out of the window. ``interval``
    uses the conformal quantile of the window's scores of that group when it has at least
    ``min_group_size`` of them, else of the whole window (+inf until min_calibration_size
    scores). The state is JSON-able (``to_dict``/``from_dict``): risk keeps one per symbol
    and horizon."""

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        window: int = DEFAULT_WINDOW,
        min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
        sigma_floor: float = 0.0,
    ) -> None:
        if int(window) < 1:
            raise ValueError(f"window must be >= 1, not {window!r}")
        self.alpha = _check_alpha(alpha)
        self.window = int(window)
        self.min_group_size = max(int(min_group_size), min_calibration_size(alpha))
        self.sigma_floor = float(sigma_floor)
        self._scores: deque[float] = deque(maxlen=self.window)
        self._groups: deque[str | None] = deque(maxlen=self.window)

    def __len__(self) -> int:
        """Scores in the window."""
        return len(self._scores)

    def update(
        self, predicted: float, realised: float, sigma: float = 1.0, group: str | None = None
    ) -> float:
        """Add one resolved prediction; returns its score."""
        p, r = _pairs([predicted], [realised])
        score = float(abs(r[0] - p[0]) / _scales(sigma, 1, self.sigma_floor)[0])
        self._scores.append(score)
        self._groups.append(None if group is None else str(group))
        return score

    def quantile(self, group: str | None = None) -> float:
        """q of the window's scores of ``group`` (>= min_group_size of them), else of all."""
        scores = np.fromiter(self._scores, dtype=np.float64, count=len(self._scores))
        if group is not None:
            mine = np.asarray([g == str(group) for g in self._groups], dtype=bool)
            if int(mine.sum()) >= self.min_group_size:
                return conformal_quantile(scores[mine], self.alpha)
        return conformal_quantile(scores, self.alpha)

    def interval(
        self, predicted: float, sigma: float = 1.0, group: str | None = None
    ) -> tuple[float, float]:
        """(low, high) = p -+ q_group * max(sigma, sigma_floor), in bps."""
        half = self.quantile(group) * float(_scales(sigma, 1, self.sigma_floor)[0])
        return predicted - half, predicted + half

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state: the parameters and the window's scores and group keys."""
        return {
            "alpha": self.alpha,
            "window": self.window,
            "min_group_size": self.min_group_size,
            "sigma_floor": self.sigma_floor,
            "scores": list(self._scores),
            "groups": list(self._groups),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OnlineConformal:
        """The inverse of ``to_dict``; ValueError on mismatched or invalid scores."""
        scores = [float(s) for s in state.get("scores", [])]
        groups = [None if g is None else str(g) for g in state.get("groups", [None] * len(scores))]
        if len(groups) != len(scores):
            raise ValueError(f"state has {len(scores)} scores and {len(groups)} groups")
        if not all(math.isfinite(s) and s >= 0.0 for s in scores):
            raise ValueError("state scores must be finite and >= 0")
        out = cls(
            alpha=float(state.get("alpha", DEFAULT_ALPHA)),
            window=int(state.get("window", DEFAULT_WINDOW)),
            min_group_size=int(state.get("min_group_size", DEFAULT_MIN_GROUP_SIZE)),
            sigma_floor=float(state.get("sigma_floor", 0.0)),
        )
        out._scores.extend(scores)  # a longer list keeps its newest ``window`` scores
        out._groups.extend(groups)
        return out


def pessimistic_edge_bps(predicted: float, low: float, high: float) -> float:
    """The worst-case edge in the trade's direction (bps).

    Long (predicted > 0): ``low``; short (predicted < 0): ``-high`` (a short earns minus the
    move). predicted == 0 has no direction: min(low, -high), the worse of the two."""
    if predicted > 0:
        return float(low)
    if predicted < 0:
        return -float(high)
    return min(float(low), -float(high))


def runner_gate(predicted: float, interval: tuple[float, float], cost_bps: float) -> bool:
    """Seed 002's runner gate: the pessimistic edge beats costs, pessimistic_edge_bps > cost_bps.

    ``cost_bps`` is the round-trip cost plus buffer the trade must clear (seed 002's runner
    profile: an 8 bps cost buffer). An infinite interval (too few calibration scores) or a
    NaN never passes."""
    low, high = interval
    return bool(pessimistic_edge_bps(predicted, low, high) > cost_bps)
