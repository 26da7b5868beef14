"""Paper track records: one virtual book per model, fed by its own signals. Pure, no I/O.

Every routed model, live or shadow, and the consensus (the champion, ``consensus``)
keeps a book of one unit of notional per symbol, traded on its own opinions at the
router's decisions and marked at every features message of the symbol:

- **target** at a decision where the model has an opinion ``(edge_bps, confidence)``:
  ``sign(edge_bps)`` when ``|edge_bps| > cost_bps`` and ``confidence > 0``, else flat
  (0); a waiting model (no opinion) keeps its position;
- **cost** of a change: ``|delta| * cost_bps``, ``cost_bps = spread_bps / 2 + fee_bps``:
  execution's cost of a market order of small size (half the quoted spread, the taker
  fee of its default schedule, 4 bps; impact is nil at one unit of notional);
- **mark**: ``position * 1e4 * (mid / previous mid - 1)`` bps of the unit notional;
- **trades**: a trade opens when the position leaves 0 or flips sign, and closes when
  it returns to 0 or flips; a trade is a **hit** when its PnL after costs is above 0;
- **days**: PnL is booked per UTC day of event time; ``roll(day)`` closes the days
  before ``day`` for every book at once, so the daily series of all models are aligned
  (a day with no activity is a 0).

The champion is the consensus signal as risk sees it: its edge, and its confidence (0
when the gate is shut: flat). Numbers are in bps of one unit of notional per symbol, so
a model's daily PnL is comparable with another's whatever their sizes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from services.model_router.consensus import _sign

DAY_NS = 86_400 * 10**9
MAX_DAYS = 400  # daily PnLs kept per model (a year and a bit)


@dataclass(slots=True)
class Leg:
    """One symbol of one book."""

    position: float = 0.0
    mid: float = 0.0
    trade_pnl_bps: float = 0.0  # PnL of the open trade, costs included


@dataclass(slots=True)
class Book:
    """One model's virtual paper book."""

    legs: dict[str, Leg] = field(default_factory=dict)
    day_pnl_bps: float = 0.0
    daily_bps: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_DAYS))
    trades: int = 0
    closed: int = 0
    hits: int = 0
    turnover: float = 0.0  # sum of |position change|, units of notional
    cost_bps: float = 0.0  # every cost paid
    pnl_bps: float = 0.0  # every PnL, costs included

    def mark(self, symbol: str, mid: float) -> None:
        leg = self.legs.get(symbol)
        if leg is None:
            return
        if leg.position != 0.0 and leg.mid > 0:
            move = leg.position * 1e4 * (mid / leg.mid - 1.0)
            leg.trade_pnl_bps += move
            self.day_pnl_bps += move
            self.pnl_bps += move
        leg.mid = mid

    def target(self, symbol: str, mid: float, target: float, cost_bps: float) -> None:
        leg = self.legs.get(symbol)
        if leg is None:
            leg = self.legs[symbol] = Leg(mid=mid)
        else:
            self.mark(symbol, mid)
        if target == leg.position:
            return
        delta = abs(target - leg.position)
        cost = delta * cost_bps
        was = leg.position
        if was != 0.0:  # the open trade ends (returns to 0 or flips)
            if target == 0.0 or _sign(target) != _sign(was):
                leg.trade_pnl_bps -= cost if target == 0.0 else cost / 2.0
                self.closed += 1
                self.hits += leg.trade_pnl_bps > 0.0
                leg.trade_pnl_bps = -cost / 2.0 if target != 0.0 else 0.0
            else:  # resized: the cost goes to the open trade
                leg.trade_pnl_bps -= cost
        else:
            leg.trade_pnl_bps = -cost
        if target != 0.0 and (was == 0.0 or _sign(target) != _sign(was)):
            self.trades += 1
        leg.position = target
        self.turnover += delta
        self.cost_bps += cost
        self.day_pnl_bps -= cost
        self.pnl_bps -= cost

    def close_day(self) -> None:
        self.daily_bps.append(self.day_pnl_bps)
        self.day_pnl_bps = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "legs": {s: [g.position, g.mid, g.trade_pnl_bps] for s, g in self.legs.items()},
            "day_pnl_bps": self.day_pnl_bps,
            "daily_bps": list(self.daily_bps),
            "trades": self.trades,
            "closed": self.closed,
            "hits": self.hits,
            "turnover": self.turnover,
            "cost_bps": self.cost_bps,
            "pnl_bps": self.pnl_bps,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Book:
        b = cls(
            legs={s: Leg(float(p), float(m), float(t)) for s, (p, m, t) in doc["legs"].items()},
            day_pnl_bps=float(doc["day_pnl_bps"]),
            trades=int(doc["trades"]),
            closed=int(doc["closed"]),
            hits=int(doc["hits"]),
            turnover=float(doc["turnover"]),
            cost_bps=float(doc["cost_bps"]),
            pnl_bps=float(doc["pnl_bps"]),
        )
        b.daily_bps.extend(float(x) for x in doc["daily_bps"])
        return b


class TrackRecords:
    """Every model's book, on one event-time day clock."""

    def __init__(self, fee_bps: float = 4.0) -> None:
        self.fee_bps = fee_bps
        self.books: dict[str, Book] = {}
        self.day: int | None = None  # the UTC day (ts_ns // DAY_NS) being booked
        self.days_closed = 0

    def roll(self, ts_ns: int) -> bool:
        """Close every day before the one of ``ts_ns``; True when a day closed."""
        day = ts_ns // DAY_NS
        if self.day is None:
            self.day = day
            return False
        if day <= self.day:
            return False
        for _ in range(min(day - self.day, MAX_DAYS)):
            for book in self.books.values():
                book.close_day()
            self.days_closed += 1
        self.day = day
        return True

    def mark(self, symbol: str, mid: float) -> None:
        for book in self.books.values():
            book.mark(symbol, mid)

    def opinion(
        self,
        model_id: str,
        symbol: str,
        mid: float,
        spread_bps: float,
        edge_bps: float,
        conf: float,
    ) -> None:
        """The model's opinion at a decision: its book moves to its target."""
        book = self.books.get(model_id)
        if book is None:
            book = self.books[model_id] = Book()
            # Aligned series: a book that starts late has 0 for the days it missed.
            book.daily_bps.extend([0.0] * min(self.days_closed, MAX_DAYS))
        cost = max(spread_bps, 0.0) / 2.0 + self.fee_bps
        target = _sign(edge_bps) if abs(edge_bps) > cost and conf > 0.0 else 0.0
        book.target(symbol, mid, target, cost)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fee_bps": self.fee_bps,
            "day": self.day,
            "days_closed": self.days_closed,
            "books": {m: b.to_dict() for m, b in self.books.items()},
        }

    def load(self, doc: dict[str, Any]) -> None:
        self.day = doc.get("day")
        self.days_closed = int(doc.get("days_closed", 0))
        self.books = {m: Book.from_dict(b) for m, b in doc.get("books", {}).items()}
