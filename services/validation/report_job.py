"""The 23:55 UTC report (seed 003's daily schedule: "PnL attribution (by engine, by cost)
snapshot to reports"), with the daily metrics its inputs allow. Pure: the day's
messages in, a JSON-able dict out; ``edgebus daily`` (daily_cli.py) reads them from the
stack or a backtest directory.

**Round trips.** Per symbol, the fills in event-time order move a position
``pos += d q`` (d = +1 buy, -1 sell). A trade opens when pos leaves 0 and closes when it
comes back to 0 (within ``attribution.FLAT_RTOL`` of the trade's traded size) or goes
through it. A fill that goes through 0 is split in two: the part that brings the
position to flat closes the trade (with all of the fill's funding: funding is paid on
the quantity closed), the rest opens the next one; the fee is split by quantity. Each
closed round trip is ``attribution.trade_from_fills``; its id is ``<symbol>:<order_id>``
of the fill that opened it (telemetry's ``Event.trade_id``).

**Engines (the join rule).** A trade's engine shares come from the ``votes`` of the
latest consensus Signal (model_id ``consensus``, not shadow, with votes) of its symbol
whose ts_ns is at or before the ts_ns of the order that opened the trade (the opening
fill's ts_ns when that order is not among the inputs). Risk sizes an order at the event
time of the signal it trades on, so that signal is the one the order came from; no
signal at or before it: ``unattributed``.

**The day.** Only trades closed in [day_start_ns, day_end_ns) are attributed;
``open_trades`` counts the round trips opened before day_end_ns and not closed by then.

**Daily metrics** (services/validation/daily_metrics.py). Three can be computed from
these inputs; OOS Sharpe, Brier, drawdown days saved are NaN (they need the walk-forward,
the scored signals, a counterfactual backtest) and exploration has no cap (used_pct NaN):

- consensus diversity: the votes of the day's consensus signals;
- slippage error: per fill of the day with a ``fee_bps``, realised = slippage_bps +
  fee_bps against predicted = ``cost_bps`` of the risk decision (action ``order``) of its
  order; fills without such a decision are left out;
- early warning: warnings are the day's breaker trips (action ``breaker``, reason
  ``breaker:...``), drawdowns the ``drawdown_starts`` (5 %) of the equity marks up to
  day_end_ns that fall in the day (earlier marks set the peaks), lead one day.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from services.validation.attribution import FLAT_RTOL, Trade, attribute, trade_from_fills
from services.validation.daily_metrics import daily_metrics, drawdown_starts, early_warning
from shared.messages import Fill, Order, RiskDecision, Signal

CONSENSUS_ID = "consensus"
DAY_NS = 86_400 * 10**9
DRAWDOWN_THRESHOLD_PCT = 5.0
WARNING_LEAD_NS = DAY_NS


@dataclasses.dataclass
class RoundTrip:
    """One symbol's fills from leaving flat to coming back (``close_ts_ns`` None: open)."""

    symbol: str
    opening_order_id: str
    fills: list[dict[str, Any]]
    close_ts_ns: int | None = None

    @property
    def open_ts_ns(self) -> int:
        return int(self.fills[0]["ts_ns"])


def utc_day(ts_ns: int) -> str:
    """'YYYY-MM-DD' of the UTC day holding ``ts_ns``."""
    return dt.datetime.fromtimestamp(ts_ns // DAY_NS * 86_400, dt.UTC).date().isoformat()


def _signed(side: str) -> float:
    return 1.0 if side == "buy" else -1.0


def round_trips(fills: Sequence[Fill]) -> list[RoundTrip]:
    """Every symbol's round trips, closed and open, in order of opening (module docstring)."""
    trips: list[RoundTrip] = []
    current: dict[str, RoundTrip] = {}
    pos: dict[str, float] = {}
    size: dict[str, float] = {}  # traded quantity of the current trip, for the flat test
    for f in sorted(fills, key=lambda f: (f.ts_ns, f.symbol, f.order_id, f.fill_seq)):
        sym = f.symbol
        d = _signed(f.side)
        before = pos.get(sym, 0.0)
        row = f.model_dump()
        trip = current.get(sym)
        if trip is None:
            trip = RoundTrip(sym, f.order_id, [])
            current[sym] = trip
            trips.append(trip)
            size[sym] = 0.0
        after = before + d * f.qty
        crosses = before != 0.0 and after * before < 0.0 and abs(after) > FLAT_RTOL * f.qty
        if crosses:
            closing_qty = abs(before)
            frac = closing_qty / f.qty
            trip.fills.append({**row, "qty": closing_qty, "fee": f.fee * frac})
            trip.close_ts_ns = f.ts_ns
            rest = RoundTrip(
                sym,
                f.order_id,
                [
                    {
                        **row,
                        "qty": f.qty - closing_qty,
                        "fee": f.fee * (1 - frac),
                        "funding_usd": 0.0,
                    }
                ],
            )
            current[sym] = rest
            trips.append(rest)
            pos[sym] = after
            size[sym] = f.qty - closing_qty
            continue
        trip.fills.append(row)
        size[sym] += f.qty
        if abs(after) <= FLAT_RTOL * size[sym]:
            trip.close_ts_ns = f.ts_ns
            del current[sym]
            pos[sym] = 0.0
        else:
            pos[sym] = after
    return trips


class _ConsensusIndex:
    """Per symbol, the consensus signals with votes in time order: the join's look-up."""

    def __init__(self, signals: Sequence[Signal]) -> None:
        by_symbol: dict[str, list[Signal]] = {}
        for s in signals:
            if s.model_id == CONSENSUS_ID and not s.shadow and s.votes:
                by_symbol.setdefault(s.symbol, []).append(s)
        self._signals = {k: sorted(v, key=lambda s: s.ts_ns) for k, v in by_symbol.items()}
        self._ts = {k: [s.ts_ns for s in v] for k, v in self._signals.items()}

    def votes_at(self, symbol: str, ts_ns: int) -> dict[str, Any] | None:
        """The votes of the latest consensus signal of ``symbol`` at or before ts_ns."""
        ts = self._ts.get(symbol)
        if not ts:
            return None
        i = bisect.bisect_right(ts, ts_ns)
        return self._signals[symbol][i - 1].votes if i else None


def _trades_of_day(
    trips: Sequence[RoundTrip],
    orders: Sequence[Order],
    signals: Sequence[Signal],
    day_start_ns: int,
    day_end_ns: int,
) -> tuple[list[Trade], int]:
    order_ts = {o.order_id: o.ts_ns for o in orders}
    index = _ConsensusIndex(signals)
    trades: list[Trade] = []
    seen: dict[str, int] = {}
    open_trades = 0
    for trip in trips:
        if trip.open_ts_ns >= day_end_ns:
            continue
        if trip.close_ts_ns is None or trip.close_ts_ns >= day_end_ns:
            open_trades += 1
            continue
        base = f"{trip.symbol}:{trip.opening_order_id}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        if trip.close_ts_ns < day_start_ns:
            continue
        trade_id = base if n == 0 else f"{base}#{n + 1}"
        opened_at = order_ts.get(trip.opening_order_id, trip.open_ts_ns)
        votes = index.votes_at(trip.symbol, opened_at)
        trades.append(trade_from_fills(trade_id, trip.fills, votes))
    return trades, open_trades


def pnl_report(
    orders: Sequence[Order],
    fills: Sequence[Fill],
    signals: Sequence[Signal],
    day_start_ns: int,
    day_end_ns: int,
    equity: Sequence[tuple[int, float]] = (),
    decisions: Sequence[RiskDecision] = (),
) -> dict[str, Any]:
    """The 23:55 report of the day [day_start_ns, day_end_ns) (module docstring).

    Keys: ``day`` (UTC date of day_start_ns), ``attribution`` (``attribution.attribute``
    of the trades closed in the day, with ``trade_ids``), ``daily_metrics``
    (``DailyMetrics.as_dict()``), ``open_trades`` (count), ``n_fills`` (fills of the day).
    Fills before the day are needed to know which position a fill of the day closes.
    """
    if day_end_ns <= day_start_ns:
        raise ValueError(f"day_end_ns {day_end_ns} must be after day_start_ns {day_start_ns}")

    def in_day(ts_ns: int) -> bool:
        return day_start_ns <= ts_ns < day_end_ns

    trades, open_trades = _trades_of_day(
        round_trips(fills), orders, signals, day_start_ns, day_end_ns
    )
    attribution = attribute(trades)
    attribution["trade_ids"] = [t.trade_id for t in trades]

    day_fills = [f for f in fills if in_day(f.ts_ns)]
    cost_of_order = {
        d.order_id: d.cost_bps for d in decisions if d.action == "order" and d.order_id
    }
    predicted, realised = [], []
    for f in day_fills:
        if f.fee_bps is not None and f.order_id in cost_of_order:
            predicted.append(cost_of_order[f.order_id])
            realised.append(f.slippage_bps + f.fee_bps)
    votes = [
        s.votes
        for s in signals
        if s.model_id == CONSENSUS_ID and not s.shadow and s.votes and in_day(s.ts_ns)
    ]
    warnings = [
        d.ts_ns
        for d in decisions
        if d.action == "breaker" and d.reason.startswith("breaker:") and in_day(d.ts_ns)
    ]
    marks = sorted((int(t), float(e)) for t, e in equity if int(t) < day_end_ns)
    marks = [(t, e) for t, e in marks if math.isfinite(e)]
    starts = [t for t in drawdown_starts(marks, DRAWDOWN_THRESHOLD_PCT) if in_day(t)]
    metrics = daily_metrics(
        vote_decisions=[_directional_votes(v) for v in votes],
        predicted_cost_bps=predicted,
        realised_cost_bps=realised,
    )
    metrics = dataclasses.replace(metrics, warning=early_warning(warnings, starts, WARNING_LEAD_NS))
    return {
        "day": utc_day(day_start_ns),
        "attribution": attribution,
        "daily_metrics": metrics.as_dict(),
        "open_trades": open_trades,
        "n_fills": len(day_fills),
    }


def _directional_votes(votes: dict[str, Any]) -> dict[str, Any]:
    """The votes that carry an edge (``consensus_diversity`` reads ``edge_bps``)."""
    return {m: v for m, v in votes.items() if isinstance(v, dict) and "edge_bps" in v}
