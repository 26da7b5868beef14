"""Consensus of the approved engines (seed 003 §1 as quoted in issue 4). Pure, no I/O.

For the live votes i of one symbol and horizon (``e_i`` edge in bps, ``c_i`` confidence
in [0, 1], ``W_i`` the rule's weight):

1. probability and direction: ``p_i = (1 + c_i) / 2`` is the probability the model
   gives to its own direction ``s_i = sign(e_i)`` (so ``2 p_i - 1 = c_i``);
2. reliability: ``r_i = (1 - Brier_i) * exp(-ln2 * age_i / half_life)``, ``age_i`` in
   seconds since the vote was made (a waiting engine's last vote ages and fades);
3. base weights, normalised: ``b_i = W_i r_i / sum_j W_j r_j`` (all 0 when the sum is 0:
   nobody is reliable, nobody speaks); an engine with ``b_i = 0`` keeps ``w_i = 0``;
4. correlation penalty, over the engines with ``b_i > 0``: the weights that minimise
   ``w'Cw + lambda * |w - b|^2`` subject to ``sum w = 1`` (C: the engines' correlation
   matrix, estimated from their recent signed scores, see ``VoteHistory``). Setting the gradient of the
   Lagrangian to zero gives ``(C + lambda I) w = lambda b + nu 1``, so with
   ``A = C + lambda I``: ``w = A^-1 (lambda b + nu 1)``,
   ``nu = (1 - lambda 1'A^-1 b) / (1'A^-1 1)``. Negative weights are clipped to 0 and the
   rest renormalised (an engine is never bet against). With ``lambda > 0`` and C
   positive semi-definite, A is positive definite even when C is singular (two engines
   perfectly correlated). The fallback, when A itself is singular or ill-conditioned
   (``lambda = 0`` with a singular C, or a C that is not PSD; detected as a pivot below
   1e-10 times A's largest diagonal entry in the elimination), is the base weights b,
   unpenalised, reported as ``method = "fallback"``;
5. score: ``S = sum_i w_i (2 p_i - 1) s_i`` in [-1, 1], and the consensus edge
   ``edge_bps = sum_i w_i e_i``;
6. gate: trade only if ``|S| > k * rolling_std(S, 100)`` (see ``ScoreGate``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LN2 = math.log(2.0)
SINGULAR_PIVOT = 1e-10  # relative pivot size below which A is treated as singular


@dataclass(frozen=True, slots=True)
class Vote:
    model_id: str
    edge_bps: float
    confidence: float  # in [0, 1]
    rule_weight: float  # W_i >= 0
    brier: float  # running Brier score in [0, 1]
    age_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Consensus:
    score: float  # S
    edge_bps: float
    weights: tuple[float, ...]  # w_i, same order as the votes
    reliabilities: tuple[float, ...]  # r_i
    probabilities: tuple[float, ...]  # p_i
    method: str  # "single", "none", "penalised" or "fallback"

    def contribution(self, i: int, vote: Vote) -> float:
        """|w_i (2 p_i - 1) s_i|: how much of S this vote carries."""
        return abs(self.weights[i] * (2.0 * self.probabilities[i] - 1.0) * _sign(vote.edge_bps))


def _sign(x: float) -> float:
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def reliability(brier: float, age_s: float, half_life_s: float) -> float:
    """r = (1 - Brier) * exp(-ln2 * age / half_life), clamped to [0, 1]."""
    r = (1.0 - brier) * math.exp(-LN2 * max(age_s, 0.0) / half_life_s)
    return min(1.0, max(0.0, r))


def solve(a: list[list[float]], rhs: list[list[float]]) -> list[list[float]] | None:
    """Solve ``A X = RHS`` (Gaussian elimination with partial pivoting, in place on
    copies); None when A is singular or ill-conditioned: a pivot below ``SINGULAR_PIVOT``
    times A's largest diagonal entry. Plain Python: engines are few, and for n <= 10
    this is several times faster than numpy's call overhead."""
    n = len(a)
    m = [row[:] + rhs_row[:] for row, rhs_row in zip(a, rhs, strict=True)]
    scale = max((abs(a[i][i]) for i in range(n)), default=0.0)
    if scale <= 0 or not math.isfinite(scale):
        return None
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < SINGULAR_PIVOT * scale:
            return None
        m[col], m[piv] = m[piv], m[col]
        pivot_row = m[col]
        inv = 1.0 / pivot_row[col]
        for r in range(col + 1, n):
            factor = m[r][col] * inv
            if factor:
                row = m[r]
                for k in range(col, len(row)):
                    row[k] -= factor * pivot_row[k]
    width = len(m[0]) - n
    x = [[0.0] * width for _ in range(n)]
    for r in range(n - 1, -1, -1):
        for j in range(width):
            acc = m[r][n + j] - sum(m[r][k] * x[k][j] for k in range(r + 1, n))
            x[r][j] = acc / m[r][r]
    return x


def penalised_weights(
    base: Sequence[float], corr: Sequence[Sequence[float]], lam: float
) -> tuple[list[float], str]:
    """argmin_w w'Cw + lam |w - b|^2 s.t. sum w = 1, clipped at 0; see the module doc."""
    n = len(base)
    a = [[float(corr[i][j]) + (lam if i == j else 0.0) for j in range(n)] for i in range(n)]
    sol = solve(a, [[b, 1.0] for b in base])
    if sol is None:
        return list(base), "fallback"
    a_inv_b = [row[0] for row in sol]
    a_inv_1 = [row[1] for row in sol]
    denom = sum(a_inv_1)
    if abs(denom) < 1e-12:
        return list(base), "fallback"
    nu = (1.0 - lam * sum(a_inv_b)) / denom
    w = [max(0.0, lam * x + nu * y) for x, y in zip(a_inv_b, a_inv_1, strict=True)]
    total = sum(w)
    if total <= 0 or not math.isfinite(total):
        return list(base), "fallback"
    return [x / total for x in w], "penalised"


def consensus(
    votes: Sequence[Vote],
    corr: np.ndarray | None,
    *,
    half_life_s: float,
    penalty_lambda: float,
) -> Consensus:
    """S, the consensus edge and the weights of ``votes``; ``corr`` is their correlation
    matrix (None: identity, i.e. nothing known about co-movement)."""
    n = len(votes)
    probs = tuple((1.0 + v.confidence) / 2.0 for v in votes)
    rel = tuple(reliability(v.brier, v.age_s, half_life_s) for v in votes)
    raw = [v.rule_weight * r for v, r in zip(votes, rel, strict=True)]
    total = sum(raw)
    if n == 0 or total <= 0:
        return Consensus(0.0, 0.0, (0.0,) * n, rel, probs, "none")
    # Only engines with a positive base weight take part in the penalty: an engine
    # nobody trusts (r = 0) or switched off (W = 0) must not be pulled back in.
    active = [i for i in range(n) if raw[i] > 0]
    full = [0.0] * n
    if len(active) == 1:
        full[active[0]] = 1.0
        method = "single"
    else:
        base = [raw[i] / total for i in active]
        if corr is None:
            c = [[float(i == j) for j in range(len(active))] for i in range(len(active))]
        else:
            cm = corr.tolist()
            c = [[cm[i][j] for j in active] for i in active]
        w, method = penalised_weights(base, c, penalty_lambda)
        for i, w_i in zip(active, w, strict=True):
            full[i] = w_i
    weights = tuple(full)
    score = edge = 0.0
    for w_i, p_i, v in zip(weights, probs, votes, strict=True):
        score += w_i * (2.0 * p_i - 1.0) * _sign(v.edge_bps)
        edge += w_i * v.edge_bps
    return Consensus(score, edge, weights, rel, probs, method)


class ScoreGate:
    """Trade only if ``|S| > k * rolling_std(S, window)``.

    The standard deviation (population) is over the previous ``window`` scores, not
    counting the one being judged, and the gate stays shut until ``min_samples`` scores
    were seen (a std of two points means nothing). Every judged score joins the window.
    Running sums keep it O(1); they are recomputed exactly every ``window`` scores so
    rounding errors cannot accumulate.
    """

    __slots__ = ("k", "min_samples", "scores", "_sum", "_sumsq", "_since_exact")

    def __init__(self, k: float, window: int = 100, min_samples: int = 20) -> None:
        self.k = k
        self.min_samples = min_samples
        self.scores: deque[float] = deque(maxlen=window)
        self._sum = self._sumsq = 0.0
        self._since_exact = 0

    def std(self) -> float:
        n = len(self.scores)
        if n == 0:
            return 0.0
        mean = self._sum / n
        return math.sqrt(max(0.0, self._sumsq / n - mean * mean))

    def judge(self, score: float) -> tuple[bool, float]:
        """(passed, threshold k * std), then remember ``score``."""
        if len(self.scores) < max(self.min_samples, 2):
            passed, threshold = False, math.inf
        else:
            threshold = self.k * self.std()
            passed = abs(score) > threshold
        self._push(score)
        return passed, threshold

    def _push(self, score: float) -> None:
        scores = self.scores
        if len(scores) == scores.maxlen:
            old = scores[0]
            self._sum -= old
            self._sumsq -= old * old
        scores.append(score)
        self._sum += score
        self._sumsq += score * score
        self._since_exact += 1
        if self._since_exact >= (scores.maxlen or 100):
            self._sum = math.fsum(scores)
            self._sumsq = math.fsum(x * x for x in scores)
            self._since_exact = 0


class VoteHistory:
    """The last ``window`` signed scores ``(2 p_i - 1) s_i`` of each model of one symbol
    and horizon (0 when it did not vote), for the correlation matrix C.

    C moves slowly (one row in ``window`` changes per message), so it is re-estimated
    every ``refresh`` messages, or when the set of voters changes.
    """

    __slots__ = ("model_ids", "index", "rows", "n", "min_samples", "refresh", "_cached")

    def __init__(
        self, model_ids: Sequence[str], window: int = 100, min_samples: int = 20, refresh: int = 10
    ) -> None:
        self.model_ids = tuple(model_ids)
        self.index = {m: i for i, m in enumerate(self.model_ids)}
        self.rows = np.zeros((window, len(self.model_ids)))
        self.n = 0
        self.min_samples = min_samples
        self.refresh = refresh
        self._cached: tuple[int, tuple[str, ...], np.ndarray | None] = (-1, (), None)

    def add(self, scores: dict[str, float]) -> None:
        row = self.rows[self.n % self.rows.shape[0]]
        row[:] = 0.0
        for m, s in scores.items():
            i = self.index.get(m)
            if i is not None:
                row[i] = s
        self.n += 1

    def corr(self, model_ids: Sequence[str]) -> np.ndarray | None:
        """Correlation matrix of ``model_ids``; None until ``min_samples`` rows. A model
        whose scores never varied is taken as uncorrelated with the others."""
        if self.n < self.min_samples or len(model_ids) < 2:
            return None
        ids = tuple(model_ids)
        at, cached_ids, cached = self._cached
        if cached_ids == ids and self.n - at < self.refresh:
            return cached
        c = self.estimate(ids)
        self._cached = (self.n, ids, c)
        return c

    def estimate(self, model_ids: Sequence[str]) -> np.ndarray:
        """The correlation matrix of ``model_ids`` over the rows held, now."""
        cols = [self.index[m] for m in model_ids]
        data = self.rows[: min(self.n, self.rows.shape[0]), cols]
        std = data.std(axis=0)
        centred = data - data.mean(axis=0)
        live = std > 1e-12
        c = np.eye(len(cols))
        if live.sum() >= 2:
            z = centred[:, live] / std[live]
            sub = (z.T @ z) / data.shape[0]
            idx = np.flatnonzero(live)
            c[np.ix_(idx, idx)] = np.clip(sub, -1.0, 1.0)
        return c
