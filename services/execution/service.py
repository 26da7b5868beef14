"""execution: a paper broker. ``orders`` and ``md.ticks`` in; ``fills``, ``positions``
and ``rejections`` out. Wiring only: the maths live in ``engine`` and its modules, the
durable state in ``store``.

Idempotent by ``order_id`` (a seen order is skipped; fills are written by a
check of their sequence number in the same transaction), working orders survive restarts, and
``trading.control`` halt/flatten cancel and close within the control handler. Orders and
ticks are handled in event-time order; an order acts at its arrival as the runtime's timer.
"""

from __future__ import annotations

from typing import Any, ClassVar

from services.execution import metrics as xm
from services.execution import store
from services.execution.config import ExecutionConfig
from services.execution.engine import ExecutionEngine, Outputs
from services.execution.positions import total_pnl_usd
from shared.bus import Entry, Outbox
from shared.control import ControlCommand
from shared.messages import MD_TICKS, ORDERS, Order, Tick
from shared.service import Service


class Execution(Service[ExecutionConfig]):
    name: ClassVar[str] = "execution"
    # At equal event times the market first, then the orders decided on it.
    inputs: ClassVar[tuple[str, ...]] = (MD_TICKS, ORDERS)
    upstreams: ClassVar[dict[str, str]] = {MD_TICKS: "feature_bus", ORDERS: "risk_harmoniser"}

    def __init__(self, config: ExecutionConfig | None = None) -> None:
        super().__init__(config)
        self.engine = ExecutionEngine(self.config)
        self._batch = Outputs()
        self._written: list[Outputs] = []
        self.fills = 0  # written since start (health; bench reads it)
        self.rejections = 0
        self._fill_rate: dict[str, tuple[float, float]] = {}  # symbol -> (ordered, filled)
        # PNL_USD.labels(symbol), bound once: it is set for every symbol after every batch
        self._pnl_gauges: dict[str, Any] = {}

    # ---- start and state ---------------------------------------------------------------

    async def on_start(self) -> None:
        await self._reload()

    async def _reload(self) -> None:
        engine = ExecutionEngine(self.config)
        await store.load(self.r, engine)
        self.engine = engine
        self._batch = Outputs()
        self._written = []
        xm.WORKING.set(len(engine.working))

    async def on_batch_failed(self) -> None:
        await self._reload()  # the batch will be re-read: rebuild memory from Redis

    def on_committed(self) -> None:
        self._record(self._written)
        self._written = []

    # ---- handling ----------------------------------------------------------------------

    def on_message(self, entry: Entry, out: Outbox) -> None:
        msg = entry.message
        if isinstance(msg, Tick):
            self.engine.on_tick(msg, self.trading, self._batch)
        elif isinstance(msg, Order):
            self.engine.on_order(msg, self.trading, self._batch)

    def on_timer(self, ts_ns: int, out: Outbox) -> None:
        self.engine.on_timer(ts_ns, self.trading, self._batch)

    def next_timer_ns(self) -> int | None:
        return self.engine.next_timer_ns()

    def lookahead_ns(self, stream: str) -> int | None:
        if stream == ORDERS:  # nothing comes back before the order reached the market
            return self.engine.latency_ns
        return 0 if self.engine.works_on_ticks() else None  # a tick fills nothing else

    def on_batch_end(self, out: Outbox) -> None:
        if self.trading.halted and self.engine.working:
            # The halt arrived by resync (a missed control message): cancel now.
            self.engine.halt(self.event_ns, self._batch)
        self._flush(self._batch, out)
        self._written = [self._batch]
        self._batch = Outputs()  # a batch's outputs are flushed exactly once

    def on_control(self, cmd: ControlCommand, out: Outbox) -> None:
        """halt: cancel every working order; flatten: that, then close every position
        at market. ``self.trading`` is already HALTED here, so nothing fills after."""
        o = Outputs()
        now = max(self.event_ns, 1)
        if cmd.action == "flatten":
            self.engine.flatten(now, o)
        elif cmd.action == "halt":
            self.engine.halt(now, o)
        self._flush(o, out)
        self._written = [o]  # recorded once the runtime has written it

    def on_config(self, config: ExecutionConfig) -> None:
        self.engine.cfg = config
        self.engine.quotes.resize(config.quote_history)
        self.engine.account.starting_equity_usd = config.starting_equity_usd

    def _flush(self, o: Outputs, out: Outbox) -> None:
        store.queue_writes(o, self.engine, out, self.config.bus.maxlen)

    # ---- feedback ----------------------------------------------------------------------

    def _record(self, written: list[Outputs]) -> None:
        for o in written:
            xm.record_costs(o.costs, o.completed)  # predicted vs realised, fill types
            for f in o.fills:
                self.fills += 1
                xm.FILLS.labels(f.symbol, f.liquidity, f.strategy).inc()
                xm.FILLED_QTY.labels(f.symbol).inc(f.qty)
                if f.fee >= 0:
                    xm.FEES_USD.labels(f.symbol).inc(f.fee)
                else:
                    xm.REBATES_USD.labels(f.symbol).inc(-f.fee)
                xm.SLIPPAGE_BPS.labels(f.symbol).observe(f.slippage_bps)
                if f.time_to_fill_ms is not None:
                    xm.TIME_TO_FILL.labels(f.symbol).observe(max(f.time_to_fill_ms, 0) / 1e3)
            for rej in o.rejections:
                self.rejections += 1
                xm.REJECTIONS.labels(rej.symbol, rej.reason).inc()
            for c in o.completed:
                xm.ORDERS.labels(c.symbol, c.outcome).inc()
                xm.ORDERED_QTY.labels(c.symbol).inc(c.qty)
                xm.COMPLETED_FILLED_QTY.labels(c.symbol).inc(c.filled_qty)
                ordered, filled = self._fill_rate.get(c.symbol, (0.0, 0.0))
                ordered, filled = ordered + c.qty, filled + c.filled_qty
                self._fill_rate[c.symbol] = (ordered, filled)
                if ordered > 0:
                    xm.FILL_RATE.labels(c.symbol).set(filled / ordered)
            if o.duplicates:
                xm.DUPLICATES.inc(o.duplicates)
        xm.WORKING.set(len(self.engine.working))
        books = self.engine.books
        for symbol, book in books.items():
            gauge = self._pnl_gauges.get(symbol)
            if gauge is None:
                gauge = self._pnl_gauges[symbol] = xm.PNL_USD.labels(symbol)
            gauge.set(book.total_pnl_usd)
        total = total_pnl_usd(books)
        xm.EQUITY_USD.set(self.engine.account.equity_usd(total))
        xm.DAILY_PNL_USD.set(self.engine.account.daily_pnl_usd(total))

    def health_details(self) -> dict[str, Any]:
        books = self.engine.books
        total = total_pnl_usd(books)
        return {
            "fills": self.fills,
            "rejections": self.rejections,
            "working_orders": len(self.engine.working),
            "positions": {s: round(b.qty, 8) for s, b in books.items() if b.qty},
            "pnl_usd": round(total, 2),
            "equity_usd": round(self.engine.account.equity_usd(total), 2),
        }

    def add_routes(self, app: Any) -> None:
        @app.get("/positions")
        async def positions() -> dict[str, Any]:
            books = self.engine.books
            total = total_pnl_usd(books)
            return {
                "symbols": {
                    s: {
                        **b.as_dict(),
                        "unrealized_pnl_usd": b.unrealized_pnl_usd,
                        "total_pnl_usd": b.total_pnl_usd,
                    }
                    for s, b in books.items()
                },
                "total_pnl_usd": total,
                "daily_pnl_usd": self.engine.account.daily_pnl_usd(total),
                "equity_usd": self.engine.account.equity_usd(total),
                "working_orders": len(self.engine.working),
            }


SERVICE = Execution
