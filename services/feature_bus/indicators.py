"""Incremental indicators: O(1) per update, no I/O, each checked against a batch
reference in tests (tests/unit/test_feature_reference.py, test_feature_time.py,
test_feature_bars.py).

Time-decayed averages take the decay factor ``w`` of the time since the previous
observation, ``w = exp(-dt / tau)`` (``decay``); the caller computes it once per quote
for all averages of the same time constant.

- ``DecayedMean``: the time-decayed weighted mean of the observations,
  m_t = sum_i w_i x_i / sum_i w_i with w_i = exp(-(t - t_i) / tau): each observation
  has weight 1 when it arrives, decaying with its age in event time. Recursively
  S_t = w S_{t-1} + 1, m_t = m_{t-1} + (x_t - m_{t-1}) / S_t, S_0 = 0. This is pandas'
  ``ewm(halflife=tau ln 2, times=..., adjust=True).mean()``. For quotes every dt it is
  an EMA with alpha = 1 - exp(-dt / tau) once warm (no seed bias before: the first
  value is x_0). An EMA of span s seconds uses tau = s / 2, so that n quotes per span
  give alpha = 1 - exp(-2 / n), within 1.1 % of the tick EMA's 2 / (n + 1) for n >= 5.
- ``VarianceRate``: variance per second of event time of zero-mean returns,
  v_t = sum_i w_i r_i^2 / sum_i w_i dt_i (same weights, tau = half-life / ln 2): the
  RiskMetrics EWMA of r^2 per unit of elapsed time, so a return over a 3-day weekend
  counts as 3 days of variance, a return over 80 ms as 80 ms. 0 before any return.
- ``WilderMean``: Wilder's smoothing (J. W. Wilder, "New Concepts in Technical Trading
  Systems", 1978): the plain mean of the first n values, then
  s_t = s_{t-1} + (x_t - s_{t-1}) / n. From the n-th value on this is exactly Wilder's
  "smoothed sum / n"; before it, it is the mean of what has been seen (warm-up).
- ``WindowMean``: arithmetic mean of the values of the last ``window_s`` seconds of
  event time, (t - window, t]; the running sum is re-added from scratch once per
  window's worth of updates, and when a value leaving outweighs the rest, so float
  drift stays bounded.
- ``Adx``: Wilder's ADX(period) on bars: either given bars (``bar``: the bar's own high,
  low and close) or time bars of ``bar_s`` seconds built from prices (``update``: the
  high, low and last price of the prices in [k bar_s, (k + 1) bar_s) of the epoch, a bar
  closing when the first price of a later one arrives; empty intervals are no bars).
  +DM = up if up > down and up > 0 else 0 with up = H_t - H_{t-1},
  down = L_{t-1} - L_t (symmetrically -DM); TR = max(H - L, |H - C_{t-1}|, |L - C_{t-1}|);
  +DI = 100 Wilder(+DM) / Wilder(TR); DX = 100 |+DI - -DI| / (+DI + -DI);
  ADX = Wilder(DX). Updated when a bar closes, held in between.
"""

from __future__ import annotations

import math
from collections import deque

NS_PER_S = 1_000_000_000


def decay(dt_s: float, tau_s: float) -> float:
    """exp(-dt / tau): the weight left to an observation dt seconds old."""
    return math.exp(-dt_s / tau_s)


class DecayedMean:
    __slots__ = ("weight", "value")

    def __init__(self) -> None:
        self.weight = 0.0  # S_t, the decayed count of observations
        self.value = 0.0

    def update(self, x: float, w: float) -> float:
        s = self.weight = w * self.weight + 1.0
        self.value += (x - self.value) / s
        return self.value


class VarianceRate:
    __slots__ = ("sum_r2", "sum_dt_s", "value")

    def __init__(self) -> None:
        self.sum_r2 = 0.0
        self.sum_dt_s = 0.0
        self.value = 0.0  # variance per second

    def update(self, r: float, dt_s: float, w: float) -> float:
        self.sum_r2 = w * self.sum_r2 + r * r
        self.sum_dt_s = den = w * self.sum_dt_s + dt_s
        self.value = self.sum_r2 / den if den > 0.0 else 0.0
        return self.value


class WilderMean:
    __slots__ = ("n", "count", "value")

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.value = 0.0

    def update(self, x: float) -> float:
        if self.count < self.n:
            self.count += 1
            self.value += (x - self.value) / self.count
        else:
            self.value += (x - self.value) / self.n
        return self.value


class WindowMean:
    __slots__ = ("window_ns", "times", "values", "total", "since_resum")

    def __init__(self, window_s: float) -> None:
        self.window_ns = max(1, round(window_s * NS_PER_S))
        self.times: deque[int] = deque()
        self.values: deque[float] = deque()
        self.total = 0.0
        self.since_resum = 0

    def update(self, ts_ns: int, x: float) -> float:
        times, values = self.times, self.values
        times.append(ts_ns)
        values.append(x)
        self.total += x
        oldest = ts_ns - self.window_ns
        largest_out = 0.0
        while times[0] <= oldest:
            times.popleft()
            out = values.popleft()
            self.total -= out
            if out > largest_out:
                largest_out = out
        self.since_resum += 1
        # Amortised O(1): one full re-add per window's worth of updates, and whenever
        # what left outweighs what stays (the difference would have lost its digits).
        if self.since_resum >= len(values) or largest_out > self.total:
            self.total = sum(values)
            self.since_resum = 0
        return self.total / len(values)


class Adx:
    __slots__ = (
        "bar_ns",
        "bucket",
        "high",
        "low",
        "close",
        "prev",
        "tr",
        "pdm",
        "mdm",
        "dx",
        "plus_di",
        "minus_di",
        "value",
    )

    def __init__(self, period: int = 14, bar_s: float = 1.0) -> None:
        self.bar_ns = max(1, round(bar_s * NS_PER_S))
        self.bucket: int | None = None  # the open time bar: ts_ns // bar_ns
        self.high = self.low = self.close = 0.0
        self.prev: tuple[float, float, float] | None = None  # (high, low, close)
        self.tr = WilderMean(period)
        self.pdm = WilderMean(period)
        self.mdm = WilderMean(period)
        self.dx = WilderMean(period)
        self.plus_di = self.minus_di = self.value = 0.0

    def update(self, ts_ns: int, price: float) -> float:
        """A price at ``ts_ns`` into the time bar it falls in."""
        bucket = ts_ns // self.bar_ns
        if bucket == self.bucket:
            if price > self.high:
                self.high = price
            elif price < self.low:
                self.low = price
            self.close = price
            return self.value
        if self.bucket is not None:
            self.bar(self.high, self.low, self.close)
        self.bucket = bucket
        self.high = self.low = self.close = price
        return self.value

    def bar(self, h: float, lo: float, c: float) -> float:
        """One closed bar."""
        prev = self.prev
        self.prev = (h, lo, c)
        if prev is None:
            return self.value
        ph, pl, pc = prev
        up, down = h - ph, pl - lo
        pdm = up if up > down and up > 0 else 0.0
        mdm = down if down > up and down > 0 else 0.0
        tr = max(h - lo, abs(h - pc), abs(lo - pc))
        atr = self.tr.update(tr)
        apdm = self.pdm.update(pdm)
        amdm = self.mdm.update(mdm)
        if atr > 0:
            self.plus_di = 100.0 * apdm / atr
            self.minus_di = 100.0 * amdm / atr
        else:
            self.plus_di = self.minus_di = 0.0
        di_sum = self.plus_di + self.minus_di
        dx = 100.0 * abs(self.plus_di - self.minus_di) / di_sum if di_sum > 0 else 0.0
        self.value = self.dx.update(dx)
        return self.value
