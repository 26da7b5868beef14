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
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.control import ControlCommand, TradingState

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


class BreakerBoard:
    """The breakers' state: the trips in force by breaker name, their references (day,
    week and peak equity), the failure count and the newest tick's time; ``check``
    evaluates every breaker of the table above at one event time. Pure: the engine
    gives it the equity, the book's VaR and the streak, and turns ``events`` (reasons,
    in order) into ``risk.decisions`` entries."""

    def __init__(self, equity_usd: float) -> None:
        self.trips: dict[str, Trip] = {}
        self.day = 0
        self.day_start_equity_usd = equity_usd
        self.week = 0
        self.week_start_equity_usd = equity_usd
        self.peak_equity_usd = equity_usd
        self.failures = 0  # failed inputs in a row
        self.newest_tick_ns = 0
        self.step_down: dict[str, float] = {}  # REDUCE_RISK: symbol -> position kept (qty)
        self.events: list[str] = []
        self.now_ns = 0

    # ---- references ----------------------------------------------------------------

    def roll(self, now_ns: int, equity_usd: Callable[[], float]) -> None:
        """A new UTC day or week starts its loss reference at the equity now."""
        day = utc_day(now_ns)
        if day != self.day:
            self.day, self.day_start_equity_usd = day, equity_usd()
        week = week_start_ns(now_ns)
        if week != self.week:
            self.week, self.week_start_equity_usd = week, equity_usd()

    def rebase(self, shift_usd: float) -> None:
        """The capital changed by ``shift_usd`` (a reload of equity_usd): no loss."""
        self.day_start_equity_usd += shift_usd
        self.week_start_equity_usd += shift_usd
        self.peak_equity_usd += shift_usd

    # ---- evaluation ----------------------------------------------------------------

    def check(
        self,
        now_ns: int,
        b: Any,  # BreakerParams (config.py imports this module)
        var_limit_pct: float,
        equity_usd: float,
        var_pct: float,
        streak: int,
        held_qty: dict[str, float],
    ) -> None:
        """Trip and lift every breaker at ``now_ns``; changes go to ``events``."""
        self.now_ns = now_ns
        trips = self.trips
        for name, timed in list(trips.items()):
            if timed.until_ns and now_ns >= timed.until_ns:
                self._lift(name)
        self.peak_equity_usd = max(self.peak_equity_usd, equity_usd)
        dd = drawdown_pct(self.day_start_equity_usd, equity_usd)
        if dd >= b.daily_drawdown_pct and "daily_loss" not in trips:
            until = next_utc_midnight_ns(now_ns)
            self._trip("daily_loss", "HALT_NEW_POSITIONS", f"daily_loss {dd:.2f}%", until)
        dd = drawdown_pct(self.week_start_equity_usd, equity_usd)
        if dd >= b.weekly_loss_pct and "weekly_loss" not in trips:
            until = next_week_ns(now_ns)
            self._trip("weekly_loss", "HALT_NEW_POSITIONS", f"weekly_loss {dd:.2f}%", until)
        dd = drawdown_pct(self.peak_equity_usd, equity_usd)
        t = trips.get("drawdown")
        if t is not None:
            if now_ns - t.ts_ns >= b.drawdown_reset_s * 1e9:
                self.peak_equity_usd = equity_usd  # the drawdown is the new normal
                self._lift("drawdown")
            elif dd < b.drawdown_resume_pct:
                self._lift("drawdown")
        elif dd >= b.max_drawdown_pct:
            self._trip("drawdown", "REDUCE_RISK", f"drawdown {dd:.2f}% from peak")
            keep = b.drawdown_keep_pct / 100.0
            self.step_down = {s: abs(q) * keep for s, q in held_qty.items() if q}
        if self.newest_tick_ns:
            age_s = (now_ns - self.newest_tick_ns) / 1e9
            if age_s >= b.max_data_age_s:
                if "data_latency" not in trips:
                    self._trip("data_latency", "HALT_NEW_POSITIONS", f"data_latency {age_s:.1f}s")
            elif "data_latency" in trips:
                self._lift("data_latency")
        if self.failures >= b.max_consecutive_failures and "failures" not in trips:
            self._trip("failures", "HALT_ALL_TRADING", f"failures {self.failures} in a row")
        if var_pct > b.emergency_var_mult * b.halt_var_pct and "emergency" not in trips:
            self._trip("emergency", "EMERGENCY_CLOSE", f"portfolio_var {var_pct:.2f}% (emergency)")
        if var_pct > b.halt_var_pct:
            if "portfolio_var" not in trips:
                self._trip("portfolio_var", "HALT_ALL_TRADING", f"portfolio_var {var_pct:.2f}%")
        elif "portfolio_var" in trips and var_pct < var_limit_pct:
            self._lift("portfolio_var")
        if streak >= b.loss_streak and "loss_streak" not in trips:
            self._trip("loss_streak", "WARNING", f"loss_streak {streak} round trips")
        elif streak < b.loss_streak and "loss_streak" in trips:
            self._lift("loss_streak")

    def lifts_on_data(self) -> bool:
        """A trip in force that a tick may lift (any but a WARNING)."""
        return any(t.level != "WARNING" for t in self.trips.values())

    def panic(self, now_ns: int, symbol: str) -> None:
        """A PANIC regime signal with ``emergency_on_panic``: EMERGENCY_CLOSE."""
        if "emergency" not in self.trips:
            self.now_ns = now_ns
            self._trip("emergency", "EMERGENCY_CLOSE", f"panic regime on {symbol}")

    def _trip(self, name: str, level: str, what: str, until_ns: int = 0) -> None:
        t = Trip(level, f"breaker:{what}", self.now_ns, until_ns)
        self.trips[name] = t
        self.events.append(f"{t.reason} -> {level}")

    def _lift(self, name: str) -> None:
        t = self.trips.pop(name)
        if name == "drawdown":
            self.step_down = {}
        self.events.append(f"breaker_lifted:{name} ({t.level})")

    def command(self, state: TradingState) -> ControlCommand | None:
        """The control command that puts the desk in the state the trips call for (None
        when it is there); an operator's halt or reduce (a reason not ``breaker:``) is
        never lifted or lowered, only raised."""
        target = state_of(self.trips.values())
        if target == state.state:
            return None
        ours = state.state == "ACTIVE" or state.reason.startswith("breaker:")
        if not ours and not (target == "HALTED" and state.state == "REDUCING"):
            return None
        if target == "ACTIVE":
            return ControlCommand(action="resume", reason="breakers clear", source="risk")
        top = worst(t for t in self.trips.values() if t.level != "WARNING")
        assert top is not None
        return ControlCommand(
            action="halt" if target == "HALTED" else "reduce",
            reason=top.reason,
            until_ns=top.until_ns,
            source="risk",
        )

    def manual_resume(self) -> None:
        """An operator resumed trading: the breakers only a person lifts (failures,
        emergency, VaR) are lifted; one whose condition still holds trips again."""
        self.failures = 0
        for name in [n for n in ("failures", "emergency", "portfolio_var") if n in self.trips]:
            self._lift(name)

    def next_timer_ns(self, max_data_age_s: float, drawdown_reset_s: float) -> int | None:
        """When the breakers must be looked at with no data: the data-latency deadline,
        a timed trip's end, the drawdown reset."""
        times = []
        if self.newest_tick_ns and "data_latency" not in self.trips:
            times.append(self.newest_tick_ns + math.ceil(max_data_age_s * 1e9))
        for name, t in self.trips.items():
            if t.until_ns:
                times.append(t.until_ns)
            elif name == "drawdown":
                times.append(t.ts_ns + math.ceil(drawdown_reset_s * 1e9))
        return min(times) if times else None

    # ---- durability ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "trips": {n: [t.level, t.reason, t.ts_ns, t.until_ns] for n, t in self.trips.items()},
            "week": self.week,
            "week_start_equity_usd": self.week_start_equity_usd,
            "peak_equity_usd": self.peak_equity_usd,
            "failures": self.failures,
            "newest_tick_ns": self.newest_tick_ns,
            "step_down": self.step_down,
        }

    def load(self, d: dict[str, Any], day: int, day_start_equity_usd: float) -> None:
        self.day, self.day_start_equity_usd = day, day_start_equity_usd
        self.trips = {
            str(n): Trip(str(lv), str(why), int(ts), int(until))
            for n, (lv, why, ts, until) in d.get("trips", {}).items()
        }
        self.week = int(d.get("week", 0))
        self.week_start_equity_usd = float(d.get("week_start_equity_usd", day_start_equity_usd))
        self.peak_equity_usd = float(d.get("peak_equity_usd", day_start_equity_usd))
        self.failures = int(d.get("failures", 0))
        self.newest_tick_ns = int(d.get("newest_tick_ns", 0))
        self.step_down = {str(k): float(v) for k, v in d.get("step_down", {}).items()}
