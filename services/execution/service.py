"""execution: a paper broker. ``orders`` and ``md.ticks`` in; ``fills``, ``positions``
and ``rejections`` out. Idempotent by ``order_id``."""

from __future__ import annotations

import hashlib
import time
from typing import Any, ClassVar

import orjson

from services.execution.config import ExecutionConfig
from services.execution.positions import PositionBook
from shared.bus import Entry, Outbox
from shared.config import KEY_PREFIX
from shared.control import ControlCommand
from shared.messages import MD_TICKS, ORDERS, Fill, Order, Position, Rejection, Tick
from shared.service import Service

POSITIONS_KEY = f"{KEY_PREFIX}:execution:positions"
ORDERS_DONE_KEY = f"{KEY_PREFIX}:execution:orders_done"


class Execution(Service):
    name: ClassVar[str] = "execution"
    inputs: ClassVar[tuple[str, ...]] = (ORDERS, MD_TICKS)

    config: ExecutionConfig

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.quotes: dict[str, Tick] = {}
        self.books: dict[str, PositionBook] = {}
        self.done: set[str] = set()
        self.fills = 0
        self.rejections = 0

    async def on_start(self) -> None:
        raw = await self.r.hgetall(POSITIONS_KEY)  # type: ignore[misc]
        self.books = {s: PositionBook(**orjson.loads(b)) for s, b in raw.items()}
        self.done = set(await self.r.hkeys(ORDERS_DONE_KEY))  # type: ignore[misc]

    def on_message(self, entry: Entry, out: Outbox) -> None:
        msg = entry.message
        if isinstance(msg, Tick):
            self.quotes[msg.symbol] = msg
            book = self.books.get(msg.symbol)
            if book is not None:
                book.mark = (msg.bid + msg.ask) / 2
        elif isinstance(msg, Order):
            self._on_order(msg, out)

    def _reject(self, order: Order, reason: str, out: Outbox) -> None:
        self.rejections += 1
        out.emit(
            Rejection(
                trace_ts_ns=order.trace_ts_ns,
                order_id=order.order_id,
                symbol=order.symbol,
                ts_ns=time.time_ns(),
                reason=reason,
            )
        )
        self._mark_done(order.order_id, "rejected", out)

    def _mark_done(self, order_id: str, outcome: str, out: Outbox) -> None:
        self.done.add(order_id)
        out.call(lambda pipe: pipe.hset(ORDERS_DONE_KEY, order_id, outcome))

    def _on_order(self, order: Order, out: Outbox) -> None:
        if order.order_id in self.done:
            return  # redelivered: it was filled or rejected already, never twice
        if self.trading.halted:
            self._reject(order, "trading_halted", out)
            return
        quote = self.quotes.get(order.symbol)
        now = time.time_ns()
        if quote is None:
            self._reject(order, "no_quote", out)
            return
        if (now - quote.ts_ns) / 1e6 > self.config.max_quote_age_ms:
            self._reject(order, "stale_quote", out)
            return
        signed = order.qty if order.side == "buy" else -order.qty
        self._fill(
            order.order_id,
            order.symbol,
            signed,
            quote,
            order.decision_price,
            order.trace_ts_ns,
            out,
        )
        self._mark_done(order.order_id, "filled", out)

    def _fill(
        self,
        order_id: str,
        symbol: str,
        signed_qty: float,
        quote: Tick,
        decision_price: float,
        trace_ts_ns: int,
        out: Outbox,
    ) -> None:
        """Market fill at the touch: buy at the ask, sell at the bid, taker fee."""
        side = "buy" if signed_qty > 0 else "sell"
        price = quote.ask if signed_qty > 0 else quote.bid
        qty = abs(signed_qty)
        fee_usd = qty * price * self.config.taker_fee_bps / 1e4
        direction = 1.0 if signed_qty > 0 else -1.0
        slippage_bps = (price - decision_price) / decision_price * 1e4 * direction
        book = self.books.setdefault(symbol, PositionBook())
        book.apply_fill(signed_qty, price, fee_usd)
        book.mark = (quote.bid + quote.ask) / 2
        now = time.time_ns()
        fill_id = hashlib.sha256(f"{order_id}:0".encode()).hexdigest()[:24]
        out.emit(
            Fill(
                trace_ts_ns=trace_ts_ns,
                fill_id=fill_id,
                order_id=order_id,
                symbol=symbol,
                ts_ns=now,
                side=side,
                qty=qty,
                price=price,
                fee=fee_usd,
                slippage_bps=slippage_bps,
                venue=self.config.venue,
            )
        )
        out.emit(self._snapshot(symbol, book, now, trace_ts_ns))
        blob = orjson.dumps(book.as_dict())
        out.call(lambda pipe: pipe.hset(POSITIONS_KEY, symbol, blob))
        self.fills += 1

    def _snapshot(self, symbol: str, book: PositionBook, now: int, trace_ts_ns: int) -> Position:
        return Position(
            trace_ts_ns=trace_ts_ns,
            symbol=symbol,
            ts_ns=now,
            qty=book.qty,
            avg_price=book.avg_price,
            mark=book.mark,
            position_usd=book.qty * book.mark,
            realized_pnl_usd=book.realized_pnl_usd,
            unrealized_pnl_usd=book.unrealized_pnl_usd,
            fees_usd=book.fees_usd,
            total_pnl_usd=book.total_pnl_usd,
        )

    def on_control(self, cmd: ControlCommand, out: Outbox) -> None:
        if cmd.action != "flatten":
            return
        now = time.time_ns()
        for symbol, book in self.books.items():
            quote = self.quotes.get(symbol)
            if book.qty == 0 or quote is None:
                continue
            order_id = f"flatten-{now}-{symbol}"
            mid = (quote.bid + quote.ask) / 2
            self._fill(order_id, symbol, -book.qty, quote, mid, now, out)
            self._mark_done(order_id, "filled", out)

    def health_details(self) -> dict[str, Any]:
        total = sum(b.total_pnl_usd for b in self.books.values())
        return {"fills": self.fills, "rejections": self.rejections, "pnl_usd": round(total, 2)}


SERVICE = Execution
