"""Circuit breakers (seed 003 §6, seed 001 §2, seed 004 as quoted in issue 5) and the
seed 001 level each one raises (shared.control.LEVELS maps levels to states):

- daily drawdown: 100 * (E_day_start - E) / E_day_start >= daily_drawdown_pct
  -> HALT_ALL_TRADING until the next 00:00 UTC
- loss streak: ``loss_streak`` consecutive losing closes -> size * loss_streak_size_mult
  until a win (WARNING)
- defence mode: a name's realized daily vol above the ``vol_percentile`` of its own
  history -> size * defence_size_mult and a wider margin (WARNING)
- portfolio VaR above halt_var_pct -> HALT_ALL_TRADING (until resumed)
- stale data: a signal older than max_signal_lag_ms when it reaches risk -> no new
  positions for that decision (HALT_NEW_POSITIONS, per decision)
"""

from __future__ import annotations

import bisect
from collections import deque

DAY_NS = 86_400 * 1_000_000_000


def next_utc_midnight_ns(ts_ns: int) -> int:
    return (ts_ns // DAY_NS + 1) * DAY_NS


def utc_day(ts_ns: int) -> int:
    return ts_ns // DAY_NS


def drawdown_pct(day_start_equity_usd: float, equity_usd: float) -> float:
    """100 * (E_day_start - E) / E_day_start; negative on a winning day."""
    if day_start_equity_usd <= 0.0:
        return 0.0
    return 100.0 * (day_start_equity_usd - equity_usd) / day_start_equity_usd


class LossStreak:
    """Consecutive losing closes; reset by a win."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def record(self, pnl_usd: float) -> None:
        self.count = 0 if pnl_usd > 0 else self.count + 1

    def size_mult(self, streak: int, mult: float) -> float:
        return mult if self.count >= streak else 1.0


class VolPercentile:
    """A rolling window of one name's vol samples; is the latest above percentile q?"""

    __slots__ = ("window", "sorted")

    def __init__(self, size: int) -> None:
        self.window: deque[float] = deque(maxlen=size)
        self.sorted: list[float] = []

    def add(self, vol: float) -> None:
        if len(self.window) == self.window.maxlen:
            old = self.window[0]
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        self.window.append(vol)
        bisect.insort(self.sorted, vol)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile (q in 0..100) of the window; 0 when empty."""
        if not self.sorted:
            return 0.0
        rank = max(0, min(len(self.sorted) - 1, int(q / 100.0 * len(self.sorted) + 0.5) - 1))
        return self.sorted[rank]

    def above(self, q: float, min_samples: int) -> bool:
        """Latest sample above the q-th percentile of the window (defence mode)."""
        if len(self.window) < min_samples:
            return False
        return self.window[-1] > self.percentile(q)
