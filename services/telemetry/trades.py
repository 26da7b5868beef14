"""Trades, attribution and drawdown for the standard events; pure, no I/O.

A *trade* is one round trip of a symbol's position: it opens with the fill that
takes the position away from flat and closes with the fill that brings it back to
flat or through zero (the remainder then opens the next trade). Positions and
realized PnL use the average-cost method of ``services.execution.positions`` (the
same maths as the broker, so telemetry and execution agree to the cent).

Standard events (seed 003 §10 as quoted in issue 8) carry ``realized_pnl_usd`` only
on the fill that closes a trade: the sum of what the trade's reducing fills realized,
before fees (fees and slippage are reported as ``costs_bps``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from services.execution.positions import PositionBook

K = TypeVar("K")
V = TypeVar("V")


class Bounded(OrderedDict[K, V], Generic[K, V]):
    """A dict that forgets its oldest keys past ``cap`` (order contexts, traces)."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        while len(self) > self.cap:
            self.popitem(last=False)


# Not frozen (nothing changes one once made): one is built per signal, and a frozen
# dataclass costs three times as much to construct.
@dataclass(slots=True)
class DecisionContext:
    """Why an order was sent: the signal it came from and the blended edge."""

    expected_edge_bps: float = 0.0
    consensus_score: float | None = None
    engine_votes: Mapping[str, Any] | None = None
    regime: str = ""
    features_hash: str = ""
    model_id: str = ""


@dataclass(slots=True)
class Trade:
    trade_id: str
    symbol: str
    context: DecisionContext
    realized_pnl_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What one fill did: PnL it realized, the trade it belongs to, and the trade it
    closed (None while the position stays open)."""

    realized_usd: float
    trade: Trade
    closed: Trade | None


@dataclass(slots=True)
class TradeLedger:
    books: dict[str, PositionBook] = field(default_factory=dict)
    open: dict[str, Trade] = field(default_factory=dict)

    def on_fill(
        self,
        symbol: str,
        signed_qty: float,
        price: float,
        fee_usd: float,
        order_id: str,
        context: DecisionContext,
    ) -> FillOutcome:
        book = self.books.setdefault(symbol, PositionBook())
        q0 = book.qty
        trade = self.open.get(symbol)
        if trade is None or q0 == 0:
            trade = self.open[symbol] = Trade(order_id, symbol, context)
        realized = book.apply_fill(signed_qty, price, fee_usd)
        trade.realized_pnl_usd += realized
        q1 = book.qty
        closed = None
        if q0 != 0 and (q1 == 0 or (q1 > 0) != (q0 > 0)):
            closed = self.open.pop(symbol)
            if q1 != 0:  # crossed zero: the remainder is a new trade of this order
                self.open[symbol] = Trade(order_id, symbol, context)
        return FillOutcome(realized, trade, closed)


def costs_bps(qty: float, price: float, fee_usd: float, slippage_bps: float) -> float:
    """Cost of a fill in bps of its notional: fee_usd / (qty * price) * 1e4 + slippage."""
    notional = qty * price
    fee_bps = fee_usd / notional * 1e4 if notional > 0 else 0.0
    return fee_bps + slippage_bps


def split_by_votes(
    pnl_usd: float, votes: Mapping[str, Any] | None, fallback_model: str
) -> dict[str, float]:
    """Attribute PnL to engines by consensus weight: pnl_m = pnl * w_m / sum(w).

    Votes without a usable non-negative ``weight`` count as 0; when no weight is left
    (no votes, or a single-model signal) everything goes to ``fallback_model``.
    """
    weights: dict[str, float] = {}
    for model_id, vote in (votes or {}).items():
        w = vote.get("weight") if isinstance(vote, Mapping) else None
        if isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 and w == w:
            weights[str(model_id)] = float(w)
    total = sum(weights.values())
    if total <= 0:
        return {fallback_model or "unknown": pnl_usd}
    return {m: pnl_usd * (w / total) for m, w in weights.items()}


@dataclass(slots=True)
class Drawdown:
    """Drawdown of a PnL curve: dd = max(peak, 0) - pnl, with the peak the highest
    PnL seen (starting from 0, the equity at start); ``pct`` of equity_usd + peak."""

    equity_usd: float
    peak_usd: float = 0.0

    def update(self, pnl_usd: float) -> tuple[float, float]:
        self.peak_usd = max(self.peak_usd, pnl_usd)
        dd_usd = self.peak_usd - pnl_usd
        base = self.equity_usd + self.peak_usd
        return dd_usd, (dd_usd / base * 100.0 if base > 0 else 0.0)
