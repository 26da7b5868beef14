"""Incremental indicators: O(1) per update, no I/O, each checked against a numpy batch
reference in tests/unit/test_feature_reference.py.

- ``Ema``: e_t = e_{t-1} + alpha (x_t - e_{t-1}), alpha = 2 / (n + 1), seeded e_0 = x_0.
- ``WilderMean``: Wilder's smoothing (J. W. Wilder, "New Concepts in Technical Trading
  Systems", 1978): the plain mean of the first n values, then
  s_t = s_{t-1} + (x_t - s_{t-1}) / n. From the n-th value on this is exactly Wilder's
  "smoothed sum / n"; before it, it is the mean of what has been seen (warm-up).
- ``EwmaVariance``: RiskMetrics zero-mean EWMA, v_t = lambda v_{t-1} + (1 - lambda) r_t^2,
  lambda = 0.5 ** (1 / half_life), v_0 = 0.
- ``RollingMean``: arithmetic mean of the last n values (fewer while warming up); the
  running sum is re-added from scratch every n updates so float drift stays bounded.
- ``Adx``: Wilder's ADX(period) on bars of ``bar_ticks`` mids (high, low, close of the
  bar): +DM = up if up > down and up > 0 else 0 with up = H_t - H_{t-1},
  down = L_{t-1} - L_t (symmetrically -DM); TR = max(H - L, |H - C_{t-1}|, |L - C_{t-1}|);
  +DI = 100 Wilder(+DM) / Wilder(TR); DX = 100 |+DI - -DI| / (+DI + -DI);
  ADX = Wilder(DX). Updated when a bar closes, held in between.
"""

from __future__ import annotations

from collections import deque


class Ema:
    __slots__ = ("alpha", "value", "seeded")

    def __init__(self, n_ticks: int) -> None:
        self.alpha = 2.0 / (n_ticks + 1)
        self.value = 0.0
        self.seeded = False

    def update(self, x: float) -> float:
        if self.seeded:
            self.value += self.alpha * (x - self.value)
        else:
            self.value, self.seeded = x, True
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


class EwmaVariance:
    __slots__ = ("lam", "value")

    def __init__(self, half_life: int) -> None:
        self.lam = 0.5 ** (1.0 / half_life)
        self.value = 0.0

    def update(self, r: float) -> float:
        self.value = self.lam * self.value + (1.0 - self.lam) * r * r
        return self.value


class RollingMean:
    __slots__ = ("window", "total", "since_resum")

    def __init__(self, n: int) -> None:
        self.window: deque[float] = deque(maxlen=n)
        self.total = 0.0
        self.since_resum = 0

    def update(self, x: float) -> float:
        w = self.window
        if len(w) == w.maxlen:
            self.total -= w[0]
        w.append(x)
        self.total += x
        self.since_resum += 1
        if self.since_resum >= len(w):  # amortised O(1): one full re-add per window
            self.total = sum(w)
            self.since_resum = 0
        return self.total / len(w)


class Adx:
    __slots__ = (
        "bar_ticks",
        "k",
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

    def __init__(self, period: int = 14, bar_ticks: int = 1) -> None:
        self.bar_ticks = bar_ticks
        self.k = 0
        self.high = self.low = self.close = 0.0
        self.prev: tuple[float, float, float] | None = None  # (high, low, close)
        self.tr = WilderMean(period)
        self.pdm = WilderMean(period)
        self.mdm = WilderMean(period)
        self.dx = WilderMean(period)
        self.plus_di = self.minus_di = self.value = 0.0

    def update(self, price: float) -> float:
        if self.k == 0:
            self.high = self.low = price
        else:
            self.high = max(self.high, price)
            self.low = min(self.low, price)
        self.close = price
        self.k += 1
        if self.k == self.bar_ticks:
            self.k = 0
            self._close_bar(self.high, self.low, self.close)
        return self.value

    def _close_bar(self, h: float, lo: float, c: float) -> None:
        prev = self.prev
        self.prev = (h, lo, c)
        if prev is None:
            return
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
