"""Positions and PnL by the average-cost method; pure, no I/O.

For a fill of signed quantity q at price p on a position Q with average price A:
- adding (same sign or flat): A' = (Q*A + q*p) / (Q + q)
- reducing: realized += min(|q|, |Q|) * (p - A) * sign(Q); a fill that crosses zero
  opens the remainder at p.
- unrealized = Q * (mark - A); fees (USD, negative = rebate) accumulate separately and
  total = realized + unrealized - fees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class PositionBook:
    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl_usd: float = 0.0
    fees_usd: float = 0.0
    mark: float = 0.0

    def apply_fill(self, signed_qty: float, price: float, fee_usd: float) -> float:
        """Book a fill; returns the PnL it realized (USD, before fees)."""
        self.fees_usd += fee_usd
        self.mark = price if self.mark == 0 else self.mark
        q0 = self.qty
        if q0 == 0 or (q0 > 0) == (signed_qty > 0):
            new_qty = q0 + signed_qty
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
        else:
            self.qty = new_qty
        return realized

    @property
    def unrealized_pnl_usd(self) -> float:
        return self.qty * (self.mark - self.avg_price) if self.qty else 0.0

    @property
    def total_pnl_usd(self) -> float:
        return self.realized_pnl_usd + self.unrealized_pnl_usd - self.fees_usd

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
