"""Parametric VaR with an EWMA covariance of returns (seed 003 §5 as quoted in issue 5;
RiskMetrics Technical Document, 4th ed., 1996, §5.2 and §5.3.2).

Sampling: the marks of every name as of one event time T, taken once all marks of T are
in (``mark``: the first mark of a later time; ``flush``: a decision at T or later). A
sample is due at the first event time in each new bucket of ``sample_s`` (UTC-aligned:
``T // sample_s > last // sample_s``). Each sample counts as one period of ``sample_s``
whatever time elapsed (a weekend is one trading-day return, as RiskMetrics counts).

    r_k   = ln(m_k(T) / m_k(T_prev))                          (0 for a name without both)
    lam   = lambda ** (sample_s / decay_s)                   (lambda 0.94 per day: per sample)
    sd_k  = sqrt(S_kk * sample_s)                             (one sample's sigma, before)
    r_k  <- clip(r_k, -c sd_k, c sd_k)                         (winsorised; c = clip_sigmas)
    S    <- lam S + (1 - lam) r r^T / sample_s                (covariance per second)
    C     = S * horizon_s                                     (horizon covariance, sqrt-time)

S starts from priors: variance (prior_daily_vol)^2 / 86,400 per second, correlation
``prior_correlation`` between any two names, so VaR is defined (and conservative) before
data arrives. The last ``history`` return vectors are kept, so ``rebuild`` recomputes S
from the priors under new parameters (a reload applies at once).

For USD positions w and equity E, with z the quantile (1.645 = 95 % one-sided):

    portfolio_var_usd = z * sqrt(w^T C w)        portfolio_var_pct = 100 * var_usd / E
    position_var_pct  = 100 * z * sqrt(C_ii) * |w_i| / E
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from operator import mul

Matrix = Sequence[Sequence[float]]

# A daily variance below this (a daily volatility under 1e-15) is none: dividing by it
# overflows (found by a property test with a subnormal variance, 9e-323).
_NO_VARIANCE = 1e-30
DAY_S = 86_400.0
# Return vectors kept for a rebuild: at 300 s samples and lambda 0.94 a day, 104 days,
# after which the dropped samples' weight is 0.94^104 = 0.2 %.
HISTORY_SAMPLES = 30_000


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
    """The covariance S of sampled returns, per second; names are added as they appear.

    ``lam`` is the decay per ``decay_s`` of sampled time (default: per sample); the
    engine passes lambda per day (``decay_s`` 86,400). ``clip_sigmas`` 0 = no clipping."""

    def __init__(
        self,
        sample_s: float,
        lam: float,
        horizon_s: float,
        prior_correlation: float,
        *,
        decay_s: float | None = None,
        clip_sigmas: float = 0.0,
        history: int = HISTORY_SAMPLES,
    ) -> None:
        self.sample_s = sample_s
        self.lam = lam
        self.decay_s = decay_s or sample_s
        self.horizon_s = horizon_s
        self.rho = prior_correlation
        self.clip_sigmas = clip_sigmas
        self.index: dict[str, int] = {}
        self.prior_vols: list[float] = []  # daily, per name
        self.cov: list[list[float]] = []  # S, fractions^2 per second
        self.marks: list[float] = []  # the newest mark of each name (0 = none yet)
        self.prev_marks: list[float] = []  # the marks of the last sample
        self.mark_ns = 0  # event time of the newest mark
        self.last_ns = 0  # event time of the last sample
        self.period_s = 0.0  # event time between the last two samples
        self.samples = 0  # updates of S (the first sample only sets the marks)
        self.history: deque[tuple[float, tuple[float, ...]]] = deque(maxlen=history)
        self._unreported = False  # a sample closed, not yet told by mark
        # S, prev_marks, last_ns, samples, period_s before the last sample
        self._undo: tuple[list[list[float]], list[float], int, int, float] | None = None
        self._daily: tuple[tuple[float, ...], ...] = ()

    def add(self, symbol: str, prior_daily_vol: float) -> int:
        """Index of ``symbol``, adding it with its prior variance if new."""
        idx = self.index.get(symbol)
        if idx is not None:
            return idx
        idx = len(self.prior_vols)
        self.index[symbol] = idx
        self.prior_vols.append(prior_daily_vol)
        self.marks.append(0.0)
        self.prev_marks.append(0.0)
        self._add_prior(idx)
        return idx

    def _add_prior(self, idx: int) -> None:
        """Row and column ``idx`` of S from the prior (correlation rho with the others)."""
        var = self.prior_vols[idx] ** 2 / DAY_S
        for j, row in enumerate(self.cov):
            row.append(self.rho * math.sqrt(max(0.0, row[j]) * var))
        self.cov.append([*(self.cov[j][idx] for j in range(idx)), var])
        self._daily = ()

    # ---- sampling ------------------------------------------------------------------------

    def due(self, ts_ns: int) -> bool:
        """Is a sample due at event time ``ts_ns`` (the first time in a new bucket)?"""
        if not self.last_ns:
            return True
        step_ns = max(1, round(self.sample_s * 1e9))
        return ts_ns // step_ns > self.last_ns // step_ns

    def mark(self, idx: int, mid: float, ts_ns: int) -> bool:
        """Record name ``idx``'s mark at ``ts_ns``. The first mark of a later time closes
        the due sample of the marks as of the time before (all its marks are in). True,
        at the first mark of a later time, when a sample closed since the last True
        (here, or by a ``flush``): the caller's per-sample work is due.

        A mark at the time of a sample a ``flush`` closed already (it came after the
        decision: out of order) reopens that sample and closes it again with this mark,
        so S ends as if it had come first; an older mark enters the next sample."""
        later = ts_ns > self.mark_ns
        if later:
            if self.mark_ns and self.due(self.mark_ns):
                self._unreported |= self.sample(self.marks, self.mark_ns)
            self.mark_ns = ts_ns
        if mid > 0.0:
            self.marks[idx] = mid
            if not later and ts_ns == self.last_ns == self.mark_ns and self._undo is not None:
                self._resample()
        told = later and self._unreported
        if told:
            self._unreported = False
        return told

    def flush(self, ts_ns: int) -> bool:
        """Before a decision at ``ts_ns``: every mark up to ``ts_ns`` is in, so a due
        sample of the newest marks' time closes now. True when one closed."""
        if self.mark_ns and self.mark_ns <= ts_ns and self.due(self.mark_ns):
            closed = self.sample(self.marks, self.mark_ns)
            self._unreported |= closed
            return closed
        return False

    def sample(self, marks: Sequence[float], ts_ns: int) -> bool:
        """Close a sample of ``marks`` (index-aligned, 0 = unknown) at ``ts_ns`` if one is
        due: update S with the returns since the last sample. True when taken."""
        if not self.due(ts_ns):
            return False
        # what it takes to undo this sample (a mark of its time that comes late)
        self._undo = (
            [row[:] for row in self.cov],
            self.prev_marks[:],
            self.last_ns,
            self.samples,
            self.period_s,
        )
        n = len(self.cov)
        r = [0.0] * n
        for k in range(n):
            prev, cur = self.prev_marks[k], marks[k] if k < len(marks) else 0.0
            if prev > 0.0 and cur > 0.0:
                r[k] = math.log(cur / prev)
            if cur > 0.0:
                self.prev_marks[k] = cur
        if self.last_ns:
            self._update(r, self.sample_s)
            self.history.append((self.sample_s, tuple(r)))
            self.samples += 1
            self.period_s = (ts_ns - self.last_ns) / 1e9
        self.last_ns = ts_ns
        return True

    def _resample(self) -> None:
        """Undo the last sample and take it again with the current marks (``mark``)."""
        if self._undo is None:
            return
        cov, prev_marks, last_ns, samples, period_s = self._undo
        ts_ns = self.last_ns
        if last_ns:  # an update was made and kept: drop it
            self.history.pop()
        self.cov = cov
        for k in range(len(cov), len(self.prior_vols)):  # names added since: from the prior
            self._add_prior(k)
        self.prev_marks = prev_marks + [0.0] * (len(self.prior_vols) - len(prev_marks))
        self.last_ns, self.samples, self.period_s = last_ns, samples, period_s
        self.sample(self.marks, ts_ns)

    def _update(self, r: Sequence[float], sample_s: float) -> None:
        """S <- lam S + (1 - lam) x x^T, x = clip(r) / sqrt(sample_s) (module docstring)."""
        lam = self.lam ** (sample_s / self.decay_s)
        one, c, cov = 1.0 - lam, self.clip_sigmas, self.cov
        root = math.sqrt(sample_s)
        x = []
        for k, rk in enumerate(r):
            if c > 0.0:
                bound = c * math.sqrt(max(0.0, cov[k][k]) * sample_s)
                rk = min(bound, max(-bound, rk))
            x.append(rk / root)
        for k, xk in enumerate(x):
            row = cov[k]
            for j, xj in enumerate(x):
                row[j] = lam * row[j] + one * xk * xj
        self._daily = ()

    def rebuild(
        self,
        sample_s: float,
        lam: float,
        horizon_s: float,
        prior_correlation: float,
        prior_daily_vols: Sequence[float],
        *,
        decay_s: float | None = None,
        clip_sigmas: float = 0.0,
        keep_vols: int = 0,
    ) -> list[tuple[float, ...]]:
        """New parameters: S recomputed from the new priors over the kept history (each
        vector with the interval it was sampled at; a new ``sample_s`` applies from the
        next sample). Returns the horizon vols after each of the last ``keep_vols``
        replayed samples (for the breakers' vol history), oldest first."""
        self.sample_s, self.lam, self.horizon_s = sample_s, lam, horizon_s
        self.decay_s = decay_s or sample_s
        self.rho, self.clip_sigmas = prior_correlation, clip_sigmas
        self.prior_vols = list(prior_daily_vols)
        self.cov = []
        self._undo = None  # the history is the record now
        vols: deque[tuple[float, ...]] = deque(maxlen=keep_vols)
        for step_s, r in self.history:
            while len(self.cov) < len(r):  # a name added between these samples
                self._add_prior(len(self.cov))
            self._update(r, step_s)
            if keep_vols:
                vols.append(tuple(self.daily_vol(k) for k in range(len(r))))
        while len(self.cov) < len(self.prior_vols):
            self._add_prior(len(self.cov))
        self._daily = ()
        return list(vols)

    # ---- the horizon view ----------------------------------------------------------------

    def daily(self) -> tuple[tuple[float, ...], ...]:
        """C: the horizon covariance (fractions^2), cached until the next sample."""
        if len(self._daily) != len(self.cov):
            h = self.horizon_s
            self._daily = tuple(tuple(v * h for v in row) for row in self.cov)
        return self._daily

    def daily_vol(self, idx: int) -> float:
        """sigma of one name over the horizon, as a fraction (0.03 = 3 %)."""
        return math.sqrt(max(0.0, self.cov[idx][idx] * self.horizon_s))

    def sigma_bps_per_sqrt_s(self, idx: int) -> float:
        return math.sqrt(max(0.0, self.cov[idx][idx])) * 1e4
