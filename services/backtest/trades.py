"""Fills -> round-trip trades, and the per-trade statistics (hit rate, average win and
loss, profit factor). Pure: no I/O. Formulas, units and sources: docs/backtest_report.md."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from services.backtest.numbers import NAN, NS_PER_S
from services.backtest.numbers import safe_ratio as _safe_ratio


@dataclass(frozen=True)
class FillRow:
    """The fields of a fill the trade book needs (fee_usd < 0 is a rebate)."""

    symbol: str
    ts_ns: int
    side: str  # "buy" | "sell"
    qty: float
    price: float
    fee_usd: float = 0.0


@dataclass(frozen=True)
class Trade:
    """A round trip from flat to flat in one symbol.

    gross_pnl_usd is the average-cost realised price PnL; pnl_usd = gross - fees.
    """

    symbol: str
    direction: int  # +1 long, -1 short
    open_ts_ns: int
    close_ts_ns: int
    gross_pnl_usd: float
    fees_usd: float
    notional_usd: float  # sum of |qty| * price over the trade's fills

    @property
    def pnl_usd(self) -> float:
        return self.gross_pnl_usd - self.fees_usd

    @property
    def holding_s(self) -> float:
        return (self.close_ts_ns - self.open_ts_ns) / NS_PER_S


@dataclass
class _OpenTrade:
    q: float  # signed position
    cost: float  # average cost per unit
    open_ts_ns: int
    pnl_usd: float = 0.0
    fees_usd: float = 0.0
    notional_usd: float = 0.0
    max_abs_q: float = 0.0


def reconstruct_trades(fills: Iterable[FillRow], qty_tol: float = 1e-9) -> tuple[list[Trade], int]:
    """(closed trades in close order, number of trades still open) from fills in time order.

    Average-cost book per symbol, signed position q, average cost c, fill d*x at price p
    (d = +1 buy, -1 sell). Adding (q = 0 or same sign): c <- (c|q| + p x) / (|q| + x).
    Reducing: realised += min(x, |q|) * (p - c) * sign(q); at |q| <= qty_tol * (largest
    |q| of the trade) the trade closes, and any rest of the fill opens the next trade at p
    (a flip). A flipping fill's fee is split pro rata by quantity.
    """
    book: dict[str, _OpenTrade] = {}
    trades: list[Trade] = []
    for f in fills:
        d = 1.0 if f.side == "buy" else -1.0
        x, fee_left = float(f.qty), float(f.fee_usd)
        while x > 0:
            t = book.setdefault(f.symbol, _OpenTrade(0.0, f.price, f.ts_ns))
            if t.q == 0 or math.copysign(1.0, t.q) == d:  # open or add
                t.cost = (t.cost * abs(t.q) + f.price * x) / (abs(t.q) + x)
                t.q += d * x
                t.max_abs_q = max(t.max_abs_q, abs(t.q))
                t.fees_usd += fee_left
                t.notional_usd += x * f.price
                break
            part = min(x, abs(t.q))
            sign_q = math.copysign(1.0, t.q)
            t.pnl_usd += part * (f.price - t.cost) * sign_q
            t.fees_usd += fee_left * part / x
            t.notional_usd += part * f.price
            t.q += d * part
            fee_left *= 1.0 - part / x
            x -= part
            if abs(t.q) <= qty_tol * t.max_abs_q:
                trades.append(
                    Trade(
                        f.symbol,
                        int(sign_q),
                        t.open_ts_ns,
                        f.ts_ns,
                        t.pnl_usd,
                        t.fees_usd,
                        t.notional_usd,
                    )
                )
                del book[f.symbol]
                if x <= qty_tol * part:  # float dust left of the closing fill
                    break
    return trades, len(book)


def trade_stats(pnl_usd: Sequence[float]) -> dict[str, float]:
    """Per-trade statistics from realised trade PnL (USD, net of fees).

    hit_rate = n(pnl > 0) / n (a zero trade counts as a non-win); avg_win_usd = mean of
    pnl > 0; avg_loss_usd = mean of pnl < 0 (negative); profit_factor = sum(pnl > 0) /
    |sum(pnl < 0)| (inf with wins and no losses, NaN with neither).
    """
    p = np.asarray(pnl_usd, dtype=float)
    wins, losses = p[p > 0], p[p < 0]
    return {
        "n_trades": int(p.size),
        "hit_rate": float(wins.size / p.size) if p.size else NAN,
        "avg_win_usd": float(wins.mean()) if wins.size else NAN,
        "avg_loss_usd": float(losses.mean()) if losses.size else NAN,
        "profit_factor": _safe_ratio(float(wins.sum()), float(-losses.sum())),
    }
