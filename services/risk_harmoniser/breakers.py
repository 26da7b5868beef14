"""Circuit breakers (seed 003 §6, seed 001 §2) and the seed 001 level each raises.

Every breaker is a condition on the book or the data, evaluated on event time at each
covariance sample, after a fill, on a tick when one is latched, and on a timer (the
data-latency deadline, a timed trip's end), so a dead feed trips them too. A tripped
breaker is a ``Trip``; the trading state is that of the most severe trip:

| breaker | condition | level | state | lifts |
|---|---|---|---|---|
| loss_streak | ``loss_streak`` losing round trips in a row | WARNING | ACTIVE (size x ``loss_streak_size_mult``) | a winning round trip |
| drawdown | 100 (peak - E) / peak >= ``max_drawdown_pct`` | REDUCE_RISK | REDUCING; positions cut to ``drawdown_keep_pct`` | below ``drawdown_resume_pct``, or after ``drawdown_reset_s`` (the peak rebases) |
| daily_loss | 100 (E_day_start - E) / E_day_start >= ``daily_drawdown_pct`` | HALT_NEW_POSITIONS | REDUCING (exits still run) | 00:00 UTC |
| weekly_loss | the same from Monday 00:00 UTC >= ``weekly_loss_pct`` | HALT_NEW_POSITIONS | REDUCING | Monday 00:00 UTC |
| data_latency | newest tick older than ``max_data_age_s`` | HALT_NEW_POSITIONS | REDUCING | a fresh tick |
| portfolio_var | book VaR > ``halt_var_pct`` | HALT_ALL_TRADING | HALTED | VaR below ``limits.var_limit_pct`` |
| failures | ``max_consecutive_failures`` failed inputs in a row (dead-lettered, a failed batch) | HALT_ALL_TRADING | HALTED | a manual resume |
| emergency | book VaR > ``emergency_var_mult`` x ``halt_var_pct`` (or a manual flatten) | EMERGENCY_CLOSE | REDUCING; every position closed | a manual resume |

Defence mode (a name's realised vol above the ``vol_percentile`` of its history) is a
per-name WARNING: size x ``defence_size_mult`` and a wider margin for that name.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

DAY_NS = 86_400 * 1_000_000_000


WEEK_NS = 7 * DAY_NS
# 1970-01-01 was a Thursday: the first Monday 00:00 UTC is 4 days after the epoch.
_MONDAY_OFFSET_NS = 4 * DAY_NS

LEVELS = ("WARNING", "REDUCE_RISK", "HALT_NEW_POSITIONS", "HALT_ALL_TRADING", "EMERGENCY_CLOSE")
SEVERITY = {level: k for k, level in enumerate(LEVELS)}


@dataclass(frozen=True, slots=True)
class Trip:
    """A tripped breaker: its level, the reason on risk.decisions, the event time it
    tripped and, for a timed one, when it lifts (0: when its condition clears)."""

    level: str
    reason: str
    ts_ns: int
    until_ns: int = 0


def state_of(trips: Iterable[Trip]) -> str:
    """The trading state the trips call for: an emergency close must trade (REDUCING,
    closing), a halt trades nothing, the other two levels only reduce."""
    levels = {t.level for t in trips}
    if "EMERGENCY_CLOSE" in levels:
        return "REDUCING"
    if "HALT_ALL_TRADING" in levels:
        return "HALTED"
    if levels & {"REDUCE_RISK", "HALT_NEW_POSITIONS"}:
        return "REDUCING"
    return "ACTIVE"


def worst(trips: Iterable[Trip]) -> Trip | None:
    """The most severe trip (the earliest of equals)."""
    best: Trip | None = None
    for t in trips:
        if best is None or (SEVERITY[t.level], -t.ts_ns) > (SEVERITY[best.level], -best.ts_ns):
            best = t
    return best


def week_start_ns(ts_ns: int) -> int:
    """Monday 00:00 UTC of the week of ``ts_ns``."""
    return (ts_ns - _MONDAY_OFFSET_NS) // WEEK_NS * WEEK_NS + _MONDAY_OFFSET_NS


def next_week_ns(ts_ns: int) -> int:
    return week_start_ns(ts_ns) + WEEK_NS


def next_utc_midnight_ns(ts_ns: int) -> int:
    return (ts_ns // DAY_NS + 1) * DAY_NS


def utc_day(ts_ns: int) -> int:
    return ts_ns // DAY_NS


def drawdown_pct(day_start_equity_usd: float, equity_usd: float) -> float:
    """100 * (E_day_start - E) / E_day_start; negative on a winning day."""
    if day_start_equity_usd <= 0.0:
        return 0.0
    return 100.0 * (day_start_equity_usd - equity_usd) / day_start_equity_usd


# A round trip whose PnL after fees is within this of 0 is break-even: neither a win
# nor a loss (a flat after fees used to count as a loss).
BREAK_EVEN_USD = 1e-6


class LossStreak:
    """Consecutive losing round trips; reset by a win, unchanged by a break-even."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def record(self, pnl_usd: float) -> None:
        if pnl_usd > BREAK_EVEN_USD:
            self.count = 0
        elif pnl_usd < -BREAK_EVEN_USD:
            self.count += 1

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
