"""Confidence calibration: the reliability table and three calibrators (seed 001 §5).

A prediction states a confidence c in [0, 1] that it is right; its outcome y is 1 (a hit)
or 0. A model is calibrated when, among the predictions stated at confidence c, a
fraction c are hits: P(y = 1 | c) = c.

**Buckets** (the conventions of ``sklearn.calibration.calibration_curve``): edges
e_0 < e_1 < ... < e_B; ``uniform`` e_b = b / B (``np.linspace(0, 1, B + 1)``), ``quantile``
e = ``np.percentile(c, np.linspace(0, 1, B + 1) * 100)`` (duplicate edges give empty
buckets). A confidence goes to bucket ``searchsorted(e[1:-1], c, side="left")``: bucket 0
is [e_0, e_1] and bucket b > 0 is (e_b, e_{b+1}]; an interior edge belongs to the bucket
below it, and a value outside [e_0, e_B] to the first or last bucket.

**Metrics** over N predictions in buckets b with n_b predictions, mean confidence
conf_b = sum_{i in b} c_i / n_b and hit rate acc_b = sum_{i in b} y_i / n_b (Guo et al.
2017, "On Calibration of Modern Neural Networks", §2):

    ECE   = sum_b n_b / N * |acc_b - conf_b|
    MCE   = max_{b : n_b > 0} |acc_b - conf_b|
    Brier = (1 / N) * sum_i (c_i - y_i)^2

The table's ``gap`` is acc_b - conf_b, signed: > 0 the model was under-confident there.

**Calibrators** map a raw confidence to a calibrated one, fitted on resolved predictions;
every one gives values in [0, 1], non-decreasing in the raw confidence, and round-trips
through ``to_dict`` / ``from_dict`` (plain JSON, to keep in Redis):

- ``BucketCalibrator``: histogram binning (Zadrozny & Elkan 2001) with a Beta prior;
- ``IsotonicCalibrator``: isotonic regression by pool-adjacent-violators (Zadrozny &
  Elkan 2002), as ``sklearn.isotonic.IsotonicRegression(out_of_bounds="clip")``;
- ``PlattCalibrator``: logistic regression on logit(c) (Platt 1999), by Newton's method;
- ``OnlineCalibrator``: the bucket calibrator over counts updated one resolved prediction
  at a time, with optional exponential decay, for live use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Strategy = Literal["uniform", "quantile"]
Prior = Literal["midpoint", "confidence"]

STRATEGIES: tuple[str, ...] = ("uniform", "quantile")
PRIORS: tuple[str, ...] = ("midpoint", "confidence")
DEFAULT_BUCKETS = 10
DEFAULT_PRIOR_STRENGTH = 2.0  # pseudo-predictions: Beta(2m, 2(1 - m)), Laplace's weight
DEFAULT_PLATT_L2 = 1e-6
LOGIT_EPS = 1e-9  # logit(c) is taken of c clipped to [eps, 1 - eps]: |logit| <= 20.7


# --- inputs and buckets -----------------------------------------------------------------


def check_predictions(
    confidence: npt.ArrayLike, outcome: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """(c, y) as 1-d float arrays of one length N >= 1, c in [0, 1], y in {0, 1}; else
    ValueError naming the rule."""
    c = np.asarray(confidence, dtype=np.float64).reshape(-1)
    y = np.asarray(outcome, dtype=np.float64).reshape(-1)
    if c.shape != y.shape:
        raise ValueError(f"{c.size} confidences but {y.size} outcomes")
    if c.size == 0:
        raise ValueError("no predictions")
    if not np.all(np.isfinite(c)) or np.any((c < 0.0) | (c > 1.0)):
        raise ValueError("confidence must be in [0, 1]")
    if np.any((y != 0.0) & (y != 1.0)):
        raise ValueError("outcome must be 0 or 1")
    return c, y


def bucket_edges(
    confidence: npt.ArrayLike, n_buckets: int = DEFAULT_BUCKETS, strategy: Strategy = "uniform"
) -> FloatArray:
    """The B + 1 edges: uniform e_b = b / B; quantile e_b = the (100 b / B)-th percentile of
    the confidences (linear interpolation), as ``calibration_curve`` computes them."""
    if n_buckets < 1:
        raise ValueError("n_buckets must be >= 1")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_buckets + 1)
    if strategy == "quantile":
        quantiles = np.linspace(0, 1, n_buckets + 1)
        return np.asarray(
            np.percentile(np.asarray(confidence, dtype=np.float64), quantiles * 100),
            dtype=np.float64,
        )
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")


def bucket_index(confidence: npt.ArrayLike, edges: FloatArray) -> npt.NDArray[np.intp]:
    """b(c) = #{interior edges e_1..e_{B-1} < c}: bucket 0 = [e_0, e_1], bucket b =
    (e_b, e_{b+1}] (``np.searchsorted(edges[1:-1], c)``, side "left")."""
    return np.searchsorted(edges[1:-1], np.asarray(confidence, dtype=np.float64))


@dataclass(frozen=True)
class BucketCounts:
    """Per bucket b: n_b predictions, hits_b = sum y_i, sum_conf_b = sum c_i (floats, so
    decayed counts fit too)."""

    edges: FloatArray
    n: FloatArray
    hits: FloatArray
    sum_conf: FloatArray

    @classmethod
    def of(cls, confidence: FloatArray, outcome: FloatArray, edges: FloatArray) -> BucketCounts:
        """n_b = #{i : b(c_i) = b}, hits_b = sum_{b(c_i) = b} y_i, sum_conf_b = sum c_i."""
        k = len(edges) - 1
        idx = bucket_index(confidence, edges)
        return cls(
            edges=edges,
            n=np.bincount(idx, minlength=k).astype(np.float64),
            hits=np.bincount(idx, weights=outcome, minlength=k).astype(np.float64),
            sum_conf=np.bincount(idx, weights=confidence, minlength=k).astype(np.float64),
        )

    def ece(self) -> float:
        """sum_b n_b / N * |hits_b / n_b - sum_conf_b / n_b| = sum_b |hits_b - sum_conf_b| / N;
        0 with no predictions."""
        total = float(self.n.sum())
        return float(np.abs(self.hits - self.sum_conf).sum() / total) if total > 0 else 0.0


# --- the reliability table --------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    lower: float
    upper: float
    n: int
    mean_confidence: float  # NaN for an empty bucket (null in JSON)
    hit_rate: float
    gap: float  # hit_rate - mean_confidence: > 0 under-confident


@dataclass(frozen=True)
class Reliability:
    buckets: tuple[Bucket, ...]
    ece: float
    mce: float
    brier: float
    n: int
    n_buckets: int
    strategy: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-able; NaN (an empty bucket's means) stays NaN, which orjson writes as null."""
        return {
            "ece": self.ece,
            "mce": self.mce,
            "brier": self.brier,
            "n": self.n,
            "n_buckets": self.n_buckets,
            "strategy": self.strategy,
            "buckets": [vars(b).copy() for b in self.buckets],
        }


def reliability(
    confidence: npt.ArrayLike,
    outcome: npt.ArrayLike,
    n_buckets: int = DEFAULT_BUCKETS,
    strategy: Strategy = "uniform",
) -> Reliability:
    """The reliability table of N predictions in B buckets (module docstring for the edges):
    per bucket n_b, conf_b = mean c, acc_b = mean y (the fraction of hits), gap = acc_b -
    conf_b; ECE = sum_b n_b / N |gap_b|, MCE = max over non-empty buckets of |gap_b|,
    Brier = mean (c - y)^2 (Guo et al. 2017 §2; Brier 1950)."""
    c, y = check_predictions(confidence, outcome)
    edges = bucket_edges(c, n_buckets, strategy)
    counts = BucketCounts.of(c, y, edges)
    rows: list[Bucket] = []
    gaps: list[float] = []
    for b in range(n_buckets):
        nb = counts.n[b]
        if nb > 0:
            conf_b = counts.sum_conf[b] / nb
            acc_b = counts.hits[b] / nb
            gaps.append(abs(acc_b - conf_b))
        else:
            conf_b = acc_b = math.nan
        rows.append(
            Bucket(
                float(edges[b]),
                float(edges[b + 1]),
                int(nb),
                float(conf_b),
                float(acc_b),
                float(acc_b - conf_b),
            )
        )
    return Reliability(
        buckets=tuple(rows),
        ece=counts.ece(),
        mce=float(max(gaps)),
        brier=float(np.mean((c - y) ** 2)),
        n=int(c.size),
        n_buckets=n_buckets,
        strategy=strategy,
    )


# --- pool adjacent violators ---------------------------------------------------------------


def pool_adjacent_violators(values: npt.ArrayLike, weights: npt.ArrayLike) -> FloatArray:
    """The non-decreasing sequence f minimising sum_i w_i (v_i - f_i)^2 (w_i > 0): scan left
    to right, merging a block into its predecessor while the predecessor's weighted mean is
    larger; a merged block's value is sum w v / sum w (Ayer et al. 1955; Zadrozny & Elkan 2002)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    means: list[float] = []
    mass: list[float] = []
    sizes: list[int] = []
    for vi, wi in zip(v.tolist(), w.tolist(), strict=True):
        means.append(vi)
        mass.append(wi)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m2, w2, s2 = means.pop(), mass.pop(), sizes.pop()
            total = mass[-1] + w2
            means[-1] = (means[-1] * mass[-1] + m2 * w2) / total
            mass[-1] = total
            sizes[-1] += s2
    return np.repeat(np.asarray(means, dtype=np.float64), sizes)


# --- calibrators ------------------------------------------------------------------------


class Calibrator(Protocol):
    kind: ClassVar[str]

    def fit(self, confidence: npt.ArrayLike, outcome: npt.ArrayLike) -> Self: ...
    def transform(self, confidence: npt.ArrayLike) -> FloatArray: ...
    def to_dict(self) -> dict[str, Any]: ...
    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self: ...


def bucket_values(counts: BucketCounts, prior: Prior, prior_strength: float) -> FloatArray:
    """The calibrated value of each bucket: the posterior mean of its hit rate under a Beta
    prior of mean m_b and weight k pseudo-predictions,

        v_b = (hits_b + k m_b) / (n_b + k),

    m_b = the bucket's midpoint (e_b + e_{b+1}) / 2 (``prior="midpoint"``) or its mean raw
    confidence sum_conf_b / n_b (``"confidence"``, the midpoint when empty: a sparse bucket
    then keeps about its raw confidence). Then pool-adjacent-violators with weights n_b + k
    makes v non-decreasing over the buckets (histogram binning, Zadrozny & Elkan 2001)."""
    if prior_strength <= 0:
        raise ValueError("prior_strength must be > 0")
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, not {prior!r}")
    mid = (counts.edges[:-1] + counts.edges[1:]) / 2.0
    if prior == "confidence":
        safe_n = np.where(counts.n > 0, counts.n, 1.0)
        centre = np.where(counts.n > 0, counts.sum_conf / safe_n, mid)
    else:
        centre = mid
    raw = (counts.hits + prior_strength * centre) / (counts.n + prior_strength)
    return np.clip(pool_adjacent_violators(raw, counts.n + prior_strength), 0.0, 1.0)


class BucketCalibrator:
    """Histogram binning: calibrated(c) = v_{b(c)}, the value of c's bucket
    (``bucket_values``: a Beta-prior posterior mean of the bucket's hit rate, made
    non-decreasing). A step function of c; [0, 1]-valued."""

    kind: ClassVar[str] = "buckets"

    def __init__(
        self,
        n_buckets: int = DEFAULT_BUCKETS,
        strategy: Strategy = "uniform",
        prior: Prior = "midpoint",
        prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    ) -> None:
        if n_buckets < 1:
            raise ValueError("n_buckets must be >= 1")
        self.n_buckets = n_buckets
        self.strategy: Strategy = strategy
        self.prior: Prior = prior
        self.prior_strength = float(prior_strength)
        self.edges: FloatArray = np.linspace(0.0, 1.0, n_buckets + 1)
        self.values: FloatArray = (self.edges[:-1] + self.edges[1:]) / 2.0  # unfitted: identity-ish

    def fit(self, confidence: npt.ArrayLike, outcome: npt.ArrayLike) -> Self:
        """Edges from ``bucket_edges`` on the fit data, counts per bucket, v = ``bucket_values``."""
        c, y = check_predictions(confidence, outcome)
        self.edges = bucket_edges(c, self.n_buckets, self.strategy)
        self.values = bucket_values(
            BucketCounts.of(c, y, self.edges), self.prior, self.prior_strength
        )
        return self

    def transform(self, confidence: npt.ArrayLike) -> FloatArray:
        """calibrated(c) = v_{b(c)}."""
        return np.asarray(self.values[bucket_index(confidence, self.edges)], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``"kind"`` names the class): everything ``from_dict`` needs."""
        return {
            "kind": self.kind,
            "n_buckets": self.n_buckets,
            "strategy": self.strategy,
            "prior": self.prior,
            "prior_strength": self.prior_strength,
            "edges": self.edges.tolist(),
            "values": self.values.tolist(),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        """The inverse of ``to_dict``; ValueError (or KeyError) on a malformed document."""
        out = cls(
            int(doc["n_buckets"]), doc["strategy"], doc["prior"], float(doc["prior_strength"])
        )
        out.edges = np.asarray(doc["edges"], dtype=np.float64)
        out.values = np.asarray(doc["values"], dtype=np.float64)
        if out.edges.shape != (out.n_buckets + 1,) or out.values.shape != (out.n_buckets,):
            raise ValueError("edges must have n_buckets + 1 entries and values n_buckets")
        return out


class IsotonicCalibrator:
    """Isotonic regression (Zadrozny & Elkan 2002): the non-decreasing f minimising
    sum_i (y_i - f(c_i))^2, by pool-adjacent-violators over the distinct confidences (tied
    confidences first averaged into one point of weight their count). calibrated(c) = the
    linear interpolation of f between fitted points, c clipped to [min c_i, max c_i] first:
    ``sklearn.isotonic.IsotonicRegression(out_of_bounds="clip")``. Unfitted: identity."""

    kind: ClassVar[str] = "isotonic"

    def __init__(self) -> None:
        self.x: FloatArray = np.array([0.0, 1.0])
        self.y: FloatArray = np.array([0.0, 1.0])

    def fit(self, confidence: npt.ArrayLike, outcome: npt.ArrayLike) -> Self:
        """x = the distinct c, w = their counts, ybar = mean y per distinct c, f = PAV(ybar, w);
        keeps only the points interpolation needs (the ends of each run of equal f)."""
        c, y = check_predictions(confidence, outcome)
        x, inverse, w = np.unique(c, return_inverse=True, return_counts=True)
        ybar = np.bincount(inverse, weights=y, minlength=x.size) / w
        f = pool_adjacent_violators(ybar, w)
        keep = np.ones(f.size, dtype=bool)
        keep[1:-1] = (f[1:-1] != f[:-2]) | (f[1:-1] != f[2:])
        self.x, self.y = x[keep], np.clip(f[keep], 0.0, 1.0)
        return self

    def transform(self, confidence: npt.ArrayLike) -> FloatArray:
        """np.interp(clip(c, x_0, x_last), x, f)."""
        c = np.clip(np.asarray(confidence, dtype=np.float64), self.x[0], self.x[-1])
        return np.asarray(np.interp(c, self.x, self.y), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``"kind"`` names the class): everything ``from_dict`` needs."""
        return {"kind": self.kind, "x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        """The inverse of ``to_dict``; ValueError (or KeyError) on a malformed document."""
        out = cls()
        out.x = np.asarray(doc["x"], dtype=np.float64)
        out.y = np.asarray(doc["y"], dtype=np.float64)
        if out.x.size == 0 or out.x.shape != out.y.shape:
            raise ValueError("x and y must be non-empty and of one length")
        return out


def logit(confidence: npt.ArrayLike) -> FloatArray:
    """z = log(c / (1 - c)), c clipped to [1e-9, 1 - 1e-9] so that 0 and 1 stay finite."""
    c = np.clip(np.asarray(confidence, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.asarray(np.log(c) - np.log1p(-c), dtype=np.float64)


def _sigmoid(s: FloatArray) -> FloatArray:
    """1 / (1 + e^{-s}) = e^{min(s, 0)} / (1 + e^{-|s|}): never exp of a large positive number."""
    e = np.exp(-np.abs(s))
    return np.asarray(np.where(s >= 0, 1.0, e) / (1.0 + e), dtype=np.float64)


def _logistic_loss(z: FloatArray, y: FloatArray, a: float, b: float, l2: float) -> float:
    """sum_i [log(1 + exp(s_i)) - y_i s_i] + l2 / 2 (a^2 + b^2), s_i = a z_i + b."""
    s = a * z + b
    return float(np.sum(np.logaddexp(0.0, s) - y * s) + 0.5 * l2 * (a * a + b * b))


def fit_logistic(
    z: FloatArray, y: FloatArray, l2: float, fix_slope_zero: bool = False, max_iter: int = 100
) -> tuple[float, float]:
    """(a, b) minimising ``_logistic_loss`` by Newton's method with step halving: gradient
    g = (sum (p - y) z + l2 a, sum (p - y) + l2 b), Hessian H = [[sum w z^2 + l2, sum w z],
    [sum w z, sum w + l2]], w = p (1 - p), p = sigmoid(a z + b); stop when |step| < 1e-12.
    ``fix_slope_zero`` keeps a = 0 and fits b alone."""
    a = b = 0.0
    loss = _logistic_loss(z, y, a, b, l2)
    for _ in range(max_iter):
        p = _sigmoid(a * z + b)
        r = p - y
        w = p * (1.0 - p)
        g_b = float(r.sum()) + l2 * b
        h_bb = float(w.sum()) + l2
        if fix_slope_zero:
            step = np.array([0.0, g_b / h_bb])
        else:
            g = np.array([float(r @ z) + l2 * a, g_b])
            h_ab = float(w @ z)
            hess = np.array([[float(w @ (z * z)) + l2, h_ab], [h_ab, h_bb]])
            step = np.linalg.solve(hess, g)
        t = 1.0
        while True:
            a_new, b_new = a - t * float(step[0]), b - t * float(step[1])
            new_loss = _logistic_loss(z, y, a_new, b_new, l2)
            if new_loss <= loss + 1e-12 * max(1.0, abs(loss)) or t < 1e-10:
                break
            t /= 2.0
        a, b, loss = a_new, b_new, new_loss
        if t * float(np.max(np.abs(step))) < 1e-12:
            break
    return a, b


class PlattCalibrator:
    """Platt scaling (Platt 1999) on the log-odds: calibrated(c) = sigmoid(a logit(c) + b),
    (a, b) the logistic regression of y on z = logit(c) with a small L2 penalty
    l2 / 2 (a^2 + b^2) (``fit_logistic``; the intercept is penalised too so that a stream of
    only hits still has a finite fit; scikit-learn's LogisticRegression(C = 1 / l2) leaves
    it out, a difference of O(l2 / N)). Platt's smoothed targets are not used: y is 0/1.
    a >= 0 is enforced (a fit with a < 0 is refitted with a = 0, the constrained optimum of
    the convex loss) so the output never decreases in c. Unfitted: a = 1, b = 0, identity."""

    kind: ClassVar[str] = "platt"

    def __init__(self, l2: float = DEFAULT_PLATT_L2) -> None:
        if l2 < 0:
            raise ValueError("l2 must be >= 0")
        self.l2 = float(l2)
        self.a = 1.0
        self.b = 0.0

    def fit(self, confidence: npt.ArrayLike, outcome: npt.ArrayLike) -> Self:
        """(a, b) = argmin sum_i [log(1 + e^{s_i}) - y_i s_i] + l2 / 2 (a^2 + b^2), s_i = a z_i + b."""
        c, y = check_predictions(confidence, outcome)
        z = logit(c)
        a, b = fit_logistic(z, y, self.l2)
        if a < 0.0:
            a, b = fit_logistic(z, y, self.l2, fix_slope_zero=True)
        self.a, self.b = max(a, 0.0), b
        return self

    def transform(self, confidence: npt.ArrayLike) -> FloatArray:
        """sigmoid(a logit(c) + b)."""
        return _sigmoid(self.a * logit(confidence) + self.b)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``"kind"`` names the class): everything ``from_dict`` needs."""
        return {"kind": self.kind, "l2": self.l2, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        """The inverse of ``to_dict``; ValueError (or KeyError) on a malformed document."""
        out = cls(float(doc["l2"]))
        out.a, out.b = float(doc["a"]), float(doc["b"])
        if not (math.isfinite(out.a) and math.isfinite(out.b)) or out.a < 0:
            raise ValueError("a must be finite and >= 0, b finite")
        return out


class OnlineCalibrator:
    """The bucket calibrator over running counts, for live use: uniform buckets; each
    resolved prediction (c, hit) adds 1 to n_b, hit to hits_b and c to sum_conf_b of its
    bucket b(c). With ``half_life`` H (in updates) every count is first multiplied by
    d = 2^(-1/H), so a prediction's weight halves every H updates and the total weight stays
    below 1 / (1 - d) (about 1.44 H); without it counts grow without decay. Memory is
    3 B floats either way. transform(c) = ``bucket_values`` of the counts (the Beta prior
    toward the bucket's midpoint or mean confidence with weight ``prior_strength``, made
    non-decreasing), so a fresh calibrator returns the bucket midpoints."""

    kind: ClassVar[str] = "online"

    def __init__(
        self,
        n_buckets: int = DEFAULT_BUCKETS,
        half_life: float | None = None,
        prior: Prior = "midpoint",
        prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    ) -> None:
        if n_buckets < 1:
            raise ValueError("n_buckets must be >= 1")
        if half_life is not None and not half_life > 0:
            raise ValueError("half_life must be > 0 (updates) or None")
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, not {prior!r}")
        if prior_strength <= 0:
            raise ValueError("prior_strength must be > 0")
        self.n_buckets = n_buckets
        self.half_life = half_life
        self.prior: Prior = prior
        self.prior_strength = float(prior_strength)
        self.decay = 1.0 if half_life is None else 0.5 ** (1.0 / half_life)
        self.edges = np.linspace(0.0, 1.0, n_buckets + 1)
        self.n = np.zeros(n_buckets)
        self.hits = np.zeros(n_buckets)
        self.sum_conf = np.zeros(n_buckets)
        self.n_updates = 0
        self._values: FloatArray | None = None  # cache of bucket_values, dropped on update

    def counts(self) -> BucketCounts:
        """A copy of the current (decayed) counts."""
        return BucketCounts(self.edges, self.n.copy(), self.hits.copy(), self.sum_conf.copy())

    def update(self, confidence: float, hit: bool) -> None:
        """counts *= d (d = 2^(-1/H), 1 without a half-life); then n_b += 1, hits_b += hit,
        sum_conf_b += c for b = b(c). ValueError for c outside [0, 1]."""
        c = float(confidence)
        if not 0.0 <= c <= 1.0:
            raise ValueError("confidence must be in [0, 1]")
        if self.decay != 1.0:
            self.n *= self.decay
            self.hits *= self.decay
            self.sum_conf *= self.decay
        b = int(bucket_index(c, self.edges))
        self.n[b] += 1.0
        self.hits[b] += 1.0 if hit else 0.0
        self.sum_conf[b] += c
        self.n_updates += 1
        self._values = None

    def transform(self, confidence: npt.ArrayLike) -> FloatArray:
        """calibrated(c) = v_{b(c)}, v = ``bucket_values`` of the current counts."""
        if self._values is None:
            self._values = bucket_values(self.counts(), self.prior, self.prior_strength)
        return np.asarray(self._values[bucket_index(confidence, self.edges)], dtype=np.float64)

    def ece(self) -> float:
        """ECE of the raw confidences over the (decayed) counts: sum_b |hits_b - sum_conf_b| / sum_b n_b."""
        return self.counts().ece()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``"kind"`` names the class): everything ``from_dict`` needs."""
        return {
            "kind": self.kind,
            "n_buckets": self.n_buckets,
            "half_life": self.half_life,
            "prior": self.prior,
            "prior_strength": self.prior_strength,
            "n": self.n.tolist(),
            "hits": self.hits.tolist(),
            "sum_conf": self.sum_conf.tolist(),
            "n_updates": self.n_updates,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        """The inverse of ``to_dict``; ValueError (or KeyError) on a malformed document."""
        half_life = doc.get("half_life")
        out = cls(
            int(doc["n_buckets"]),
            None if half_life is None else float(half_life),
            doc["prior"],
            float(doc["prior_strength"]),
        )
        for name in ("n", "hits", "sum_conf"):
            arr = np.asarray(doc[name], dtype=np.float64)
            if arr.shape != (out.n_buckets,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"{name} must be n_buckets finite counts >= 0")
            setattr(out, name, arr)
        out.n_updates = int(doc.get("n_updates", 0))
        return out


CALIBRATORS: dict[
    str, type[BucketCalibrator] | type[IsotonicCalibrator] | type[PlattCalibrator]
] = {
    "buckets": BucketCalibrator,
    "isotonic": IsotonicCalibrator,
    "platt": PlattCalibrator,
}


def calibrator_for(
    kind: str,
) -> type[BucketCalibrator] | type[IsotonicCalibrator] | type[PlattCalibrator]:
    """The calibrator class for "buckets", "isotonic" or "platt"; ValueError otherwise."""
    try:
        return CALIBRATORS[kind]
    except KeyError:
        raise ValueError(f"unknown calibrator {kind!r}; known: {', '.join(CALIBRATORS)}") from None


def calibrator_from_dict(
    doc: dict[str, Any],
) -> BucketCalibrator | IsotonicCalibrator | PlattCalibrator | OnlineCalibrator:
    """Rebuild any calibrator from its ``to_dict`` (dispatch on ``doc["kind"]``)."""
    kind = doc.get("kind")
    if kind == OnlineCalibrator.kind:
        return OnlineCalibrator.from_dict(doc)
    return calibrator_for(str(kind)).from_dict(doc)
