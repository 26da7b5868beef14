"""Seed 002's two books (SHORT_HOLD "scalp", LONG_HOLD "runner"): independent
average-cost positions per (book, symbol), shared marks, a heat cap per book.

Each (book, symbol) is a portfolio.Holding (the same average-cost rule as the risk
book: adding averages the price, reducing realises min(|q|, |Q|) * (p - A) * sign(Q)).
With E = ``equity_usd``, value of a position = qty * mark (the average price while
unmarked):

    gross_b     = sum over the book's symbols of |value|
    heat_b      = gross_b / (E * cap_pct_b / 100)          (1.0 = at its cap)
    room_usd(b) = max(0, min(E * cap_pct_b / 100 - gross_b,
                             E * (100 - reserve_pct) / 100 - gross_scalp - gross_runner))

``clip`` cuts a target position value so that a trade never raises the book's gross
above its cap, nor both books' gross above 100 % - reserve; a target whose magnitude is
not above the current one (a reduction, or a flip to no more than the current size)
always passes.

PnL across books. Per holding, realised + qty * (mark - A) equals the cash flow of its
fills, -sum(q_i * p_i) + qty * mark. Hence the sum over books of (realised + unrealised -
fees) equals the cash-flow PnL of all fills, and equals one combined book per symbol's
(tests/unit/test_books.py). What the books do *not* share with a combined book: the
split between realised and unrealised (a scalp long and a runner short of one symbol
are two open positions, not a closed one) and the gross exposure (|Q_scalp| + |Q_runner|
>= |Q_scalp + Q_runner|): caps are on each book's own gross, never netted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

from services.risk_harmoniser.portfolio import Holding
from services.risk_harmoniser.profiles import BOOKS, BookCaps, BookName


@dataclass(frozen=True, slots=True)
class BookPnl:
    """A book's (or both books') PnL in USD; ``net_usd`` = realised + unrealised - fees."""

    realised_usd: float
    unrealised_usd: float
    fees_usd: float
    gross_usd: float

    @property
    def net_usd(self) -> float:
        return self.realised_usd + self.unrealised_usd - self.fees_usd


def _book(book: str) -> BookName:
    if book not in BOOKS:
        raise ValueError(f"book must be one of {list(BOOKS)}, not {book!r}")
    return cast(BookName, book)


class DualBooks:
    def __init__(self, equity_usd: float, caps: BookCaps | None = None) -> None:
        if not (math.isfinite(equity_usd) and equity_usd > 0):
            raise ValueError(f"equity_usd must be finite and > 0, not {equity_usd!r}")
        # The caller may move it (risk's live equity); caps are percent of it.
        self.equity_usd = float(equity_usd)
        self.caps = caps if caps is not None else BookCaps()
        self.holdings: dict[BookName, dict[str, Holding]] = {b: {} for b in BOOKS}
        self.marks: dict[str, float] = {}

    # ---- events ------------------------------------------------------------------------

    def on_fill(
        self, book: str, symbol: str, signed_qty: float, price: float, fee_usd: float = 0.0
    ) -> float:
        """Book a fill in ``book``; returns the PnL it realised (USD, before its fee)."""
        b = _book(book)
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"price must be finite and > 0, not {price!r}")
        if not (math.isfinite(signed_qty) and math.isfinite(fee_usd)):
            raise ValueError(f"signed_qty and fee_usd must be finite: {signed_qty!r}, {fee_usd!r}")
        holding = self.holdings[b].setdefault(symbol, Holding())
        return holding.apply(signed_qty, price, fee_usd)

    def mark(self, symbol: str, price: float) -> None:
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"mark of {symbol} must be finite and > 0, not {price!r}")
        self.marks[symbol] = float(price)

    # ---- views per book ----------------------------------------------------------------

    def price(self, symbol: str, holding: Holding | None = None) -> float:
        """The mark, else the holding's average price, else 0."""
        mark = self.marks.get(symbol)
        if mark is not None:
            return mark
        return holding.avg_price if holding is not None else 0.0

    def value_usd(self, book: str, symbol: str) -> float:
        """Signed value of the book's position in ``symbol``."""
        h = self.holdings[_book(book)].get(symbol)
        return h.qty * self.price(symbol, h) if h is not None else 0.0

    def positions(self, book: str) -> dict[str, tuple[float, float]]:
        """symbol -> (qty, avg_price) of the book's open positions."""
        return {s: (h.qty, h.avg_price) for s, h in self.holdings[_book(book)].items() if h.qty}

    def pnl(self, book: str) -> BookPnl:
        realised = unrealised = fees = gross = 0.0
        for symbol, h in self.holdings[_book(book)].items():
            realised += h.realized_usd
            fees += h.fees_usd
            if h.qty:
                px = self.price(symbol, h)
                unrealised += h.qty * (px - h.avg_price)
                gross += abs(h.qty) * px
        return BookPnl(realised, unrealised, fees, gross)

    def gross_usd(self, book: str) -> float:
        return self.pnl(book).gross_usd

    def cap_usd(self, book: str) -> float:
        return self.equity_usd * self.caps.cap_pct(_book(book)) / 100.0

    def deployable_usd(self) -> float:
        """Both books' gross may reach this: equity less the reserve."""
        return self.equity_usd * self.caps.deployable_pct / 100.0

    def heat(self, book: str) -> float:
        """gross / cap (1.0 = at the cap); inf for a zero cap holding anything."""
        gross, cap = self.gross_usd(book), self.cap_usd(book)
        if cap <= 0.0:
            return math.inf if gross > 0.0 else 0.0
        return gross / cap

    def room_usd(self, book: str) -> float:
        """How much more gross ``book`` may add within its cap and the reserve (>= 0)."""
        total = sum(self.gross_usd(b) for b in BOOKS)
        own = self.cap_usd(book) - self.gross_usd(book)
        return max(0.0, min(own, self.deployable_usd() - total))

    def clip(self, book: str, symbol: str, target_usd: float) -> float:
        """``target_usd`` (signed position value) cut so the book stays within its cap
        and both within the reserve; a target no larger in magnitude than the current
        position passes unchanged (reductions and same-size flips never add gross)."""
        if not math.isfinite(target_usd):
            raise ValueError(f"target_usd must be finite, not {target_usd!r}")
        current = abs(self.value_usd(book, symbol))
        # the largest |target| within both limits once the target replaces this position
        gross = self.gross_usd(book)
        total = sum(self.gross_usd(b) for b in BOOKS)
        limit = min(
            self.cap_usd(book) - (gross - current),
            self.deployable_usd() - (total - current),
        )
        allowed = max(current, limit)
        if abs(target_usd) <= allowed:
            return float(target_usd)
        return math.copysign(allowed, target_usd)

    # ---- both books ----------------------------------------------------------------------

    def total(self) -> BookPnl:
        """Both books summed (gross is never netted across books)."""
        parts = [self.pnl(b) for b in BOOKS]
        return BookPnl(
            sum(p.realised_usd for p in parts),
            sum(p.unrealised_usd for p in parts),
            sum(p.fees_usd for p in parts),
            sum(p.gross_usd for p in parts),
        )

    def net_qty(self, symbol: str) -> float:
        """The desk's position in ``symbol``: both books' quantities netted."""
        return sum(h.qty for b in BOOKS if (h := self.holdings[b].get(symbol)) is not None)

    def snapshot(self) -> dict[str, Any]:
        """Per book {positions, pnl, heat}, and the total: for the positions stream and
        the dashboard (neither wired yet: docs/dual_mode.md "Wiring")."""
        out: dict[str, Any] = {}
        for b in BOOKS:
            p = self.pnl(b)
            out[b] = {
                "positions": {
                    s: {
                        "qty": h.qty,
                        "avg_price": h.avg_price,
                        "value_usd": h.qty * self.price(s, h),
                    }
                    for s, h in self.holdings[b].items()
                    if h.qty
                },
                "pnl": _pnl_dict(p),
                "heat": self.heat(b),
                "cap_usd": self.cap_usd(b),
                "room_usd": self.room_usd(b),
            }
        out["total"] = {"pnl": _pnl_dict(self.total()), "deployable_usd": self.deployable_usd()}
        return out

    # ---- durability --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "equity_usd": self.equity_usd,
            "caps": self.caps.model_dump(),
            "books": {
                b: {
                    s: [h.qty, h.avg_price, h.realized_usd, h.fees_usd]
                    for s, h in self.holdings[b].items()
                }
                for b in BOOKS
            },
            "marks": dict(self.marks),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DualBooks:
        books = cls(float(d["equity_usd"]), BookCaps.model_validate(d.get("caps", {})))
        for b, holdings in d.get("books", {}).items():
            books.holdings[_book(b)] = {
                str(s): Holding(*map(float, v)) for s, v in holdings.items()
            }
        for s, m in d.get("marks", {}).items():
            books.mark(str(s), float(m))
        return books


def _pnl_dict(p: BookPnl) -> dict[str, float]:
    return {
        "realised_usd": p.realised_usd,
        "unrealised_usd": p.unrealised_usd,
        "fees_usd": p.fees_usd,
        "net_usd": p.net_usd,
        "gross_usd": p.gross_usd,
    }
