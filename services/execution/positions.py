"""Positions and PnL by the average-cost method; pure, no I/O.

For a fill of signed quantity q at price p on a position Q with average price A:
- adding (same sign or flat): A' = (Q*A + q*p) / (Q + q)
- reducing: realized += min(|q|, |Q|) * (p - A) * sign(Q); a fill that crosses zero
  opens the remainder at p.
- unrealized = Q * (mark - A); fees (USD, negative = rebate) accumulate separately and
  total = realized + unrealized - fees - funding.
- funding (seed 003 §4: rate_bps * hours_held / 8), charged on the quantity a fill
  closes, for the time it was held: the position's entry time T is averaged by quantity
  like its price (T' = (|Q| T + |q| t) / (|Q| + |q|) when adding), and a fill at t that
  closes c units pays c * A * rate_bps / 1e4 * (t - T) / 8 h.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PositionBook:
    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl_usd: float = 0.0
    fees_usd: float = 0.0
    mark: float = 0.0
    entry_ts_ns: float = 0.0  # quantity-weighted entry time of the open position
    funding_usd: float = 0.0

    def funding_due(self, signed_qty: float, ts_ns: int, rate_bps_per_8h: float) -> float:
        """The funding a fill of ``signed_qty`` at ``ts_ns`` pays on what it closes."""
        q0 = self.qty
        if q0 == 0 or (q0 > 0) == (signed_qty > 0) or not rate_bps_per_8h:
            return 0.0
        closed = min(abs(signed_qty), abs(q0))
        held_h = max(0.0, ts_ns - self.entry_ts_ns) / 3.6e12
        return closed * self.avg_price * rate_bps_per_8h / 1e4 * held_h / 8.0

    def apply_fill(
        self,
        signed_qty: float,
        price: float,
        fee_usd: float,
        ts_ns: int = 0,
        funding_usd: float = 0.0,
    ) -> float:
        """Book a fill (and the funding it pays, ``funding_due``); returns the PnL it
        realized (USD, before fees and funding)."""
        self.fees_usd += fee_usd
        self.funding_usd += funding_usd
        self.mark = price if self.mark == 0 else self.mark
        q0 = self.qty
        if q0 == 0 or (q0 > 0) == (signed_qty > 0):
            new_qty = q0 + signed_qty
            self.entry_ts_ns = (abs(q0) * self.entry_ts_ns + abs(signed_qty) * ts_ns) / abs(new_qty)
            self.avg_price = (q0 * self.avg_price + signed_qty * price) / new_qty
            self.qty = new_qty
            return 0.0
        closed = min(abs(signed_qty), abs(q0))
        realized = closed * (price - self.avg_price) * (1.0 if q0 > 0 else -1.0)
        self.realized_pnl_usd += realized
        new_qty = q0 + signed_qty
        if abs(new_qty) < 1e-12:
            self.qty, self.avg_price = 0.0, 0.0
        elif (new_qty > 0) != (q0 > 0):
            self.qty, self.avg_price = new_qty, price  # crossed zero: the rest opens at p
            self.entry_ts_ns = float(ts_ns)
        else:
            self.qty = new_qty
        return realized

    @property
    def unrealized_pnl_usd(self) -> float:
        return self.qty * (self.mark - self.avg_price) if self.qty else 0.0

    @property
    def total_pnl_usd(self) -> float:
        return self.realized_pnl_usd + self.unrealized_pnl_usd - self.fees_usd - self.funding_usd

    def as_dict(self) -> dict[str, float]:
        # dataclasses.asdict deep-copies field by field: 10x slower, once per fill
        return {
            "qty": self.qty,
            "avg_price": self.avg_price,
            "realized_pnl_usd": self.realized_pnl_usd,
            "fees_usd": self.fees_usd,
            "mark": self.mark,
            "entry_ts_ns": self.entry_ts_ns,
            "funding_usd": self.funding_usd,
        }


DAY_NS = 86_400 * 1_000_000_000


@dataclass(slots=True)
class Account:
    """Totals over every symbol, the equity curve and the daily PnL.

    equity_usd = starting_equity_usd + total_pnl_usd (sum over symbols);
    daily_pnl_usd = total_pnl_usd - total at the first event of the UTC day, where the
    day index is ts_ns // 86_400e9 (days since the epoch start at 00:00 UTC).
    """

    starting_equity_usd: float = 1_000_000.0
    day: int = -1
    day_start_pnl_usd: float = 0.0

    def new_day(self, ts_ns: int) -> bool:
        """Would ``roll`` at ``ts_ns`` start a new day?"""
        return ts_ns // DAY_NS > self.day

    def roll(self, ts_ns: int, total_pnl_usd: float) -> bool:
        """Start a new day when ``ts_ns`` is past 00:00 UTC of the next one; True if it did.
        Call it with the total *before* the event at ``ts_ns`` is booked."""
        day = ts_ns // DAY_NS
        if day <= self.day:
            return False
        self.day, self.day_start_pnl_usd = day, total_pnl_usd
        return True

    def daily_pnl_usd(self, total_pnl_usd: float) -> float:
        return total_pnl_usd - self.day_start_pnl_usd

    def equity_usd(self, total_pnl_usd: float) -> float:
        return self.starting_equity_usd + total_pnl_usd


def total_pnl_usd(books: dict[str, PositionBook]) -> float:
    return sum(b.total_pnl_usd for b in books.values())
