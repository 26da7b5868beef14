"""The book risk sizes against: positions from ``fills`` (average cost), working
orders (sent, not yet filled, rejected or cancelled), marks from ``md.ticks``.

For a fill of signed quantity q at price p on a position Q with average price A:
- adding (same sign or flat): A' = (Q*A + q*p) / (Q + q)
- reducing: realized += min(|q|, |Q|) * (p - A) * sign(Q); crossing zero opens the
  rest at p.
equity_usd = starting equity + sum(realized - fees + Q * (mark - A)).
Fills are deduplicated by ``fill_id``; a fill reduces its order's working quantity,
a rejection (or a cancel of the remainder) removes what is left.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

EPS_QTY = 1e-12


@dataclass(slots=True)
class Holding:
    qty: float = 0.0
    avg_price: float = 0.0
    realized_usd: float = 0.0
    fees_usd: float = 0.0

    def apply(self, signed_qty: float, price: float, fee_usd: float) -> float:
        """Book a fill; returns the PnL it realized (USD, before fees)."""
        self.fees_usd += fee_usd
        q0 = self.qty
        if q0 == 0.0 or (q0 > 0) == (signed_qty > 0):
            new = q0 + signed_qty
            if abs(new) < EPS_QTY:  # a dust fill on a flat book
                self.qty, self.avg_price = 0.0, 0.0
                return 0.0
            self.avg_price = (q0 * self.avg_price + signed_qty * price) / new
            self.qty = new
            return 0.0
        closed = min(abs(signed_qty), abs(q0))
        realized = closed * (price - self.avg_price) * (1.0 if q0 > 0 else -1.0)
        self.realized_usd += realized
        new = q0 + signed_qty
        if abs(new) < EPS_QTY:
            self.qty, self.avg_price = 0.0, 0.0
        elif (new > 0) != (q0 > 0):
            self.qty, self.avg_price = new, price
        else:
            self.qty = new
        return realized


class Portfolio:
    def __init__(self, starting_equity_usd: float, fill_memory: int = 5_000) -> None:
        self.starting_equity_usd = starting_equity_usd
        self.holdings: dict[str, Holding] = {}
        self.working: dict[str, tuple[str, float]] = {}  # order_id -> (symbol, signed qty left)
        self.working_qty: dict[str, float] = {}
        self.marks: dict[str, float] = {}
        self._fill_order: deque[str] = deque(maxlen=fill_memory)
        self._fills: set[str] = set()
        # Fill ids recorded since ``take_unsaved_fills`` (older ones are forgotten anyway).
        self._unsaved_fills: deque[str] = deque(maxlen=fill_memory)

    # ---- events ------------------------------------------------------------------------

    def add_working(self, order_id: str, symbol: str, signed_qty: float) -> None:
        self.working[order_id] = (symbol, signed_qty)
        self.working_qty[symbol] = self.working_qty.get(symbol, 0.0) + signed_qty

    def on_fill(
        self, fill_id: str, order_id: str, symbol: str, signed_qty: float, price: float, fee: float
    ) -> tuple[bool, float, bool]:
        """(new, realized USD after this fill's fee, closed exposure). Duplicates change nothing."""
        if fill_id in self._fills:
            return False, 0.0, False
        if len(self._fill_order) == self._fill_order.maxlen:
            self._fills.discard(self._fill_order[0])
        self._fill_order.append(fill_id)
        self._fills.add(fill_id)
        self._unsaved_fills.append(fill_id)
        holding = self.holdings.setdefault(symbol, Holding())
        q0 = holding.qty
        realized = holding.apply(signed_qty, price, fee)
        working = self.working.get(order_id)
        if working is not None:
            sym, left = working
            done = min(abs(signed_qty), abs(left))
            step = done if left > 0 else -done
            self.working_qty[sym] = self.working_qty.get(sym, 0.0) - step
            left -= step
            if abs(left) < EPS_QTY:
                del self.working[order_id]
            else:
                self.working[order_id] = (sym, left)
        closed = q0 != 0.0 and (q0 > 0) != (signed_qty > 0)
        return True, realized - fee, closed

    def on_rejection(self, order_id: str) -> bool:
        """The order (or its unfilled rest) will not fill: stop counting it."""
        working = self.working.pop(order_id, None)
        if working is None:
            return False
        sym, left = working
        self.working_qty[sym] = self.working_qty.get(sym, 0.0) - left
        if abs(self.working_qty[sym]) < EPS_QTY:
            self.working_qty[sym] = 0.0
        return True

    # ---- views ---------------------------------------------------------------------------

    def exposure_qty(self, symbol: str) -> float:
        """Filled plus working, signed."""
        h = self.holdings.get(symbol)
        return (h.qty if h else 0.0) + self.working_qty.get(symbol, 0.0)

    def equity_usd(self) -> float:
        total = self.starting_equity_usd
        for symbol, h in self.holdings.items():
            total += h.realized_usd - h.fees_usd
            mark = self.marks.get(symbol, 0.0)
            if h.qty and mark > 0.0:
                total += h.qty * (mark - h.avg_price)
        return total

    # ---- durability ------------------------------------------------------------------

    @property
    def fill_memory(self) -> int:
        return self._fill_order.maxlen or 0

    def to_dict(self, *, fills: bool = True) -> dict[str, Any]:
        """The book as JSON-able values; ``fills=False`` leaves out the remembered fill
        ids (up to ``fill_memory`` of them), which the service appends to a list of their
        own as they come (``take_unsaved_fills``) instead of rewriting them every batch."""
        doc: dict[str, Any] = {
            "holdings": {
                s: [h.qty, h.avg_price, h.realized_usd, h.fees_usd]
                for s, h in self.holdings.items()
            },
            "working": {oid: [s, q] for oid, (s, q) in self.working.items()},
            "marks": self.marks,
        }
        if fills:
            doc["fills"] = list(self._fill_order)
        return doc

    def take_unsaved_fills(self) -> list[str]:
        """The fill ids recorded since the last call (oldest first), now counted as saved."""
        out = list(self._unsaved_fills)
        self._unsaved_fills.clear()
        return out

    def load(self, d: dict[str, Any], fills: Iterable[str] = ()) -> None:
        """Restore ``to_dict`` output. Fill ids come from ``d["fills"]`` (a whole-book
        snapshot) and then ``fills`` (the service's list); those of ``d`` count as
        unsaved, so the next ``take_unsaved_fills`` moves them into the list."""
        self.holdings = {s: Holding(*map(float, v)) for s, v in d.get("holdings", {}).items()}
        self.working, self.working_qty = {}, {}
        for oid, (sym, qty) in d.get("working", {}).items():
            self.add_working(oid, str(sym), float(qty))
        self.marks.update({s: float(m) for s, m in d.get("marks", {}).items()})
        snapshot = [str(fid) for fid in d.get("fills", [])]
        for fid in snapshot:
            self._fill_order.append(fid)
        for fid in fills:
            self._fill_order.append(str(fid))
        self._fills = set(self._fill_order)
        self._unsaved_fills.clear()
        self._unsaved_fills.extend(snapshot)
