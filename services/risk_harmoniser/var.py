"""Parametric VaR with an EWMA covariance of returns (seed 003 §5 as quoted in issue 5;
RiskMetrics form).

Marks are sampled every ``sample_s``; r_i = ln(m_i / m_i_prev) * sqrt(sample_s / dt_s)
(so an irregular gap still counts as one sample), and

    S <- lambda * S + (1 - lambda) * r r^T                 (per-sample covariance)
    C  = S * horizon_s / sample_s                          (1-day covariance, sqrt-time)

S starts from priors: variance (prior_daily_vol)^2 * sample_s / horizon_s and
correlation ``prior_correlation`` between any two names, so VaR is defined (and
conservative) before data arrives.

For USD positions w and equity E, with z the quantile (1.645 = 95 % one-sided):

    portfolio_var_usd = z * sqrt(w^T C w)        portfolio_var_pct = 100 * var_usd / E
    position_var_pct  = 100 * z * sqrt(C_ii) * |w_i| / E
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import mul

Matrix = Sequence[Sequence[float]]

# A daily variance below this (a daily volatility under 1e-15) is none: dividing by it
# overflows (found by a property test with a subnormal variance, 9e-323).
_NO_VARIANCE = 1e-30


def quad_form(w: Sequence[float], cov: Matrix) -> float:
    """w^T C w, plain floats (C-level map/sum: faster than numpy below ~30 names)."""
    return sum(map(mul, w, [sum(map(mul, row, w)) for row in cov]))


def portfolio_var_usd(w: Sequence[float], cov: Matrix, z: float) -> float:
    return z * math.sqrt(max(0.0, quad_form(w, cov)))


def portfolio_var_pct(w: Sequence[float], cov: Matrix, z: float, equity_usd: float) -> float:
    return 100.0 * portfolio_var_usd(w, cov, z) / equity_usd


def position_var_pct(position_usd: float, daily_vol: float, z: float, equity_usd: float) -> float:
    """100 * z * sigma_daily * |w| / E."""
    return 100.0 * z * daily_vol * abs(position_usd) / equity_usd


def var_interval(
    i: int, w: Sequence[float], cov: Matrix, z: float, limit_usd: float
) -> tuple[float, float]:
    """Positions t of name i (the others fixed) with z * sqrt(q(t)) <= limit_usd, where
    q(t) = a t^2 + 2 b t + c, a = C_ii, b = sum_{j!=i} C_ij w_j, c = the rest.
    Returns (lo, hi); lo > hi when no position of i meets the limit."""
    a = cov[i][i]
    # b and c over the others directly: w with name i at 0 (subtracting name i's terms
    # from w^T C w cancelled catastrophically when its position dwarfs the others')
    others = list(w)
    others[i] = 0.0
    co = [sum(map(mul, row, others)) for row in cov]  # C w_others
    b = co[i]  # sum over j != i of C_ij w_j
    c = sum(map(mul, others, co))  # the others' variance
    d = (limit_usd / z) ** 2 * (1.0 - 1e-9)  # a hair inside, against rounding
    if a <= _NO_VARIANCE:  # a subnormal variance is no variance: its roots overflow
        return (-math.inf, math.inf) if c <= d else (1.0, -1.0)
    disc = b * b - a * (c - d)
    if disc < 0.0:
        return 1.0, -1.0
    root = math.sqrt(disc)
    return (-b - root) / a, (-b + root) / a


class EwmaCovariance:
    """The covariance S of sampled returns; names are added as they appear."""

    def __init__(
        self, sample_s: float, lam: float, horizon_s: float, prior_correlation: float
    ) -> None:
        self.sample_s = sample_s
        self.lam = lam
        self.scale = horizon_s / sample_s
        self.rho = prior_correlation
        self.index: dict[str, int] = {}
        self.cov: list[list[float]] = []
        self.prev_marks: list[float] = []
        self.last_ns = 0
        self.samples = 0
        self._daily: tuple[tuple[float, ...], ...] = ()

    def add(self, symbol: str, prior_daily_vol: float) -> int:
        """Index of ``symbol``, adding it with its prior variance if new."""
        idx = self.index.get(symbol)
        if idx is not None:
            return idx
        idx = len(self.cov)
        self.index[symbol] = idx
        var = prior_daily_vol**2 / self.scale
        for j, row in enumerate(self.cov):
            c = self.rho * math.sqrt(max(0.0, row[j]) * var)
            row.append(c)
        self.cov.append([*(self.cov[j][idx] for j in range(idx)), var])
        self.prev_marks.append(0.0)
        self._daily = ()
        return idx

    def due(self, ts_ns: int) -> bool:
        """Would ``sample`` at ``ts_ns`` take a sample?"""
        return not self.last_ns or (ts_ns - self.last_ns) / 1e9 >= self.sample_s

    def sample(self, marks: Sequence[float], ts_ns: int) -> bool:
        """Update S with the returns since the last sample if ``sample_s`` has passed.
        ``marks`` is index-aligned (0 = unknown). True when a sample was taken."""
        if self.last_ns and (ts_ns - self.last_ns) / 1e9 < self.sample_s:
            return False
        dt_s = (ts_ns - self.last_ns) / 1e9 if self.last_ns else self.sample_s
        norm = math.sqrt(self.sample_s / max(dt_s, 1e-9))
        n = len(self.cov)
        r = [0.0] * n
        for k in range(n):
            prev, cur = self.prev_marks[k], marks[k] if k < len(marks) else 0.0
            if prev > 0.0 and cur > 0.0:
                r[k] = math.log(cur / prev) * norm
            if cur > 0.0:
                self.prev_marks[k] = cur
        if self.last_ns:
            lam, one = self.lam, 1.0 - self.lam
            for k in range(n):
                row, rk = self.cov[k], r[k]
                for j in range(n):
                    row[j] = lam * row[j] + one * rk * r[j]
            self.samples += 1
        self.last_ns = ts_ns
        self._daily = ()
        return True

    def daily(self) -> tuple[tuple[float, ...], ...]:
        """C: the horizon covariance (fractions^2), cached until the next sample."""
        if len(self._daily) != len(self.cov):
            s = self.scale
            self._daily = tuple(tuple(v * s for v in row) for row in self.cov)
        return self._daily

    def daily_vol(self, idx: int) -> float:
        """sigma of one name over the horizon, as a fraction (0.03 = 3 %)."""
        return math.sqrt(max(0.0, self.cov[idx][idx] * self.scale))

    def sigma_bps_per_sqrt_s(self, idx: int) -> float:
        return math.sqrt(max(0.0, self.cov[idx][idx] / self.sample_s)) * 1e4
