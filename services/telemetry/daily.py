"""Seed 000's daily metrics that telemetry can measure from the streams it reads, per UTC
day of event time; pure, no I/O, no clock. docs/telemetry.md, "Daily metrics".

The maths is services/validation/daily_metrics.py's; this module only collects one day
of inputs and pairs them the way ``edgebus daily`` does (services/validation/
report_job.py), so the gauges and the 23:55 report agree on the same entries:

- slippage error: a fill with a ``fee_bps`` against the ``cost_bps`` of the risk decision
  (action ``order``) of its order: realised = slippage_bps + fee_bps, predicted = cost_bps;
- early warning: the day's breaker trips (reason ``breaker:...``, not ``breaker_lifted``)
  against the day's ``drawdown_starts`` (5 %) of the account equity, lead one day; the
  peak and the open episode are carried from day to day, so a drawdown that began
  yesterday is not a new one today;
- consensus diversity: the votes of the day's consensus signals (not shadow).

Entries are kept by the day of their ``ts_ns``; the order they come in within a day does
not matter (the inputs are sorted or joined when the day closes). Memory: at most ``cap``
inputs of each kind per day, the oldest dropped first and counted (``dropped``), and
``cap`` order costs remembered for the join.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from services.validation.daily_metrics import (
    consensus_diversity,
    drawdown_starts,
    early_warning,
    slippage_error,
)
from shared.messages import Fill, RiskDecision, Signal

DAY_NS = 86_400 * 10**9
DRAWDOWN_THRESHOLD_PCT = 5.0  # as report_job.py and daily_metrics' defaults
WARNING_LEAD_NS = DAY_NS
DEFAULT_CAP = 100_000
CONSENSUS_ID = "consensus"
KINDS = ("fills", "warnings", "equity", "consensus")

# One vote as kept: (edge_bps, weight), the two numbers consensus_diversity reads.
Votes = tuple[tuple[float, float], ...]


def day_of(ts_ns: int) -> int:
    """The UTC day holding ``ts_ns``, as days since 1970-01-01."""
    return ts_ns // DAY_NS


@dataclass
class DayInputs:
    """One day's inputs, each a deque of at most ``cap`` (oldest dropped first)."""

    cap: int
    fills: deque[tuple[str, float]] = field(init=False)  # (order_id, realised_bps)
    warnings: deque[int] = field(init=False)  # ts_ns of breaker trips
    equity: deque[tuple[int, float]] = field(init=False)  # (ts_ns, equity_usd)
    consensus: deque[Votes] = field(init=False)

    def __post_init__(self) -> None:
        self.fills = deque(maxlen=self.cap)
        self.warnings = deque(maxlen=self.cap)
        self.equity = deque(maxlen=self.cap)
        self.consensus = deque(maxlen=self.cap)


class DailyMetricsBook:
    """Collects fills, risk decisions, consensus signals and equity marks per UTC day of
    event time; ``close_day(day)`` gives the day's metrics (``daily_metrics`` keys).

    A day is due (``days_due(ts_ns)``) once an entry at least ``grace_ns`` into a later
    day has come: the streams are read side by side, so an entry of the next day can come
    a little before the last ones of this day from another stream. An entry of a day
    already closed is late: dropped and counted in ``late``.
    """

    def __init__(self, cap: int = DEFAULT_CAP, grace_ns: int = 0) -> None:
        if cap < 1:
            raise ValueError(f"cap {cap!r} must be >= 1")
        if grace_ns < 0:
            raise ValueError(f"grace_ns {grace_ns!r} must be >= 0")
        self.cap = cap
        self.grace_ns = grace_ns
        self.days: dict[int, DayInputs] = {}
        self.closed_through = -1  # days <= this are closed
        self.latest_ns = 0  # newest event time seen
        self.dropped = dict.fromkeys(KINDS, 0)  # past the cap
        self.late = 0
        # order_id -> risk's pre-trade cost_bps, for the fills (the decision of an order
        # may be of the day before its fill)
        self.cost_of_order: OrderedDict[str, float] = OrderedDict()
        # The drawdown episode carried into the next day: (peak, lowest since the peak)
        self.peak_usd: float | None = None
        self.trough_usd: float | None = None

    # ---- inputs ----------------------------------------------------------------------

    def _day(self, ts_ns: int) -> DayInputs | None:
        self.latest_ns = max(self.latest_ns, ts_ns)
        day = day_of(ts_ns)
        if day <= self.closed_through:
            self.late += 1
            return None
        inputs = self.days.get(day)
        if inputs is None:
            inputs = self.days[day] = DayInputs(self.cap)
        return inputs

    def _append(self, kind: str, items: deque[Any], item: Any) -> None:
        if len(items) == self.cap:
            self.dropped[kind] += 1
        items.append(item)

    def add_fill(self, fill: Fill) -> None:
        """A fill with a ``fee_bps`` (the fill model's): realised = slippage_bps + fee_bps."""
        inputs = self._day(fill.ts_ns)
        if inputs is None or fill.fee_bps is None:
            return
        realised = fill.slippage_bps + fill.fee_bps
        if math.isfinite(realised):
            self._append("fills", inputs.fills, (fill.order_id, realised))

    def add_decision(self, d: RiskDecision) -> None:
        """An order's modelled cost (for its fills) or a breaker trip (a warning)."""
        if d.action == "order" and d.order_id:
            self.cost_of_order[d.order_id] = d.cost_bps
            self.cost_of_order.move_to_end(d.order_id)
            while len(self.cost_of_order) > self.cap:
                self.cost_of_order.popitem(last=False)
        inputs = self._day(d.ts_ns)
        if inputs is not None and d.action == "breaker" and d.reason.startswith("breaker:"):
            self._append("warnings", inputs.warnings, d.ts_ns)

    def add_signal(self, sig: Signal) -> None:
        """A consensus decision (model ``consensus``, not shadow, with votes)."""
        inputs = self._day(sig.ts_ns)
        if inputs is None or sig.model_id != CONSENSUS_ID or sig.shadow or not sig.votes:
            return
        votes: Votes = tuple(
            (float(v["edge_bps"]), float(v.get("weight", 1.0)))
            for v in sig.votes.values()
            if isinstance(v, dict) and "edge_bps" in v
        )
        self._append("consensus", inputs.consensus, votes)

    def add_equity(self, ts_ns: int, equity_usd: float) -> None:
        """An account equity mark (Position.equity_usd)."""
        inputs = self._day(ts_ns)
        if inputs is not None and math.isfinite(equity_usd):
            self._append("equity", inputs.equity, (ts_ns, equity_usd))

    # ---- closing ---------------------------------------------------------------------

    def days_due(self) -> list[int]:
        """The open days that can close now: those ended ``grace_ns`` before the newest
        event time seen, oldest first."""
        return sorted(d for d in self.days if (d + 1) * DAY_NS + self.grace_ns <= self.latest_ns)

    def close_day(self, day: int) -> dict[str, float | int]:
        """The metrics of ``day`` (days since the epoch, UTC); its inputs are forgotten and
        any entry of it or an earlier day is late from now on. Keys as
        ``DailyMetrics.as_dict()`` (NaN where nothing was measured), plus ``day_start_ns``.
        """
        inputs = self.days.pop(day, None) or DayInputs(1)
        for earlier in [d for d in self.days if d < day]:  # closing a day closes those before
            self.days.pop(earlier)
        self.closed_through = max(self.closed_through, day)
        start_ns = day * DAY_NS

        predicted, realised = [], []
        for order_id, realised_bps in inputs.fills:
            cost = self.cost_of_order.get(order_id)
            if cost is not None:
                predicted.append(cost)
                realised.append(realised_bps)
        slip = slippage_error(predicted, realised)

        decisions = [
            {str(i): {"edge_bps": e, "weight": w} for i, (e, w) in enumerate(v)}
            for v in inputs.consensus
        ]
        diversity, diversity_n = consensus_diversity(decisions)

        warning = early_warning(
            list(inputs.warnings), self._drawdowns(inputs, start_ns), WARNING_LEAD_NS
        )
        return {
            "day_start_ns": start_ns,
            "consensus_diversity": diversity,
            "consensus_diversity_n": diversity_n,
            "slippage_n": slip.n,
            "slippage_predicted_mean_bps": slip.predicted_mean_bps,
            "slippage_realised_mean_bps": slip.realised_mean_bps,
            "slippage_bias_bps": slip.bias_bps,
            "slippage_mae_bps": slip.mae_bps,
            "slippage_rmse_bps": slip.rmse_bps,
            "early_warning_precision": warning.precision,
            "early_warning_recall": warning.recall,
            "early_warning_n": warning.n_warnings,
            "early_warning_drawdowns_n": warning.n_drawdowns,
        }

    def _drawdowns(self, inputs: DayInputs, start_ns: int) -> list[int]:
        """``drawdown_starts`` of the day's marks, with the episode carried in: the peak and
        the lowest mark since it, as two marks just before the day, give the same starts
        in the day as the whole curve would (a start depends on the peak and on whether
        the episode already reached the threshold)."""
        marks = sorted(inputs.equity)
        carried: list[tuple[int, float]] = []
        if self.peak_usd is not None and self.trough_usd is not None:
            carried = [(start_ns - 2, self.peak_usd), (start_ns - 1, self.trough_usd)]
        curve = carried + marks
        starts = [t for t in drawdown_starts(curve, DRAWDOWN_THRESHOLD_PCT) if t >= start_ns]
        for _, e in curve:  # the episode open at the day's end
            if self.peak_usd is None or e >= self.peak_usd:
                self.peak_usd = self.trough_usd = e
            elif self.trough_usd is None or e < self.trough_usd:
                self.trough_usd = e
        return starts
