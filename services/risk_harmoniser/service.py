"""risk_harmoniser: ``signals``, ``fills``, ``rejections``, ``md.ticks`` in; ``orders``
and ``risk.decisions`` out. Wiring only: the maths live in engine.py and its modules.

Durability: the engine's book (holdings, working orders, Kelly record, loss streak,
day start equity) is written to ``edgebus:risk:state``, and the ids of new fills are
appended to ``edgebus:risk:fills`` (the last ``fill_memory`` kept, for deduplication),
in the same transaction as the acks of the batch that changed them, so after a
restart they match exactly the inputs acknowledged. On a first start the book is seeded
from execution's ``edgebus:execution:positions``. A breaker that trips publishes on
``trading.control`` and saves ``edgebus:trading`` in that transaction too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from prometheus_client import Gauge

from services.calibration.governor import WinRateGovernor
from services.execution.store import POSITIONS_KEY
from services.risk_harmoniser import exits as ex
from services.risk_harmoniser.books import DualBooks
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.engine import Decision, RiskEngine
from services.risk_harmoniser.profiles import BOOKS
from shared.bus import Entry, Outbox, dead_letter
from shared.config import KEY_PREFIX
from shared.control import ControlCommand
from shared.merge import NEVER
from shared.messages import (
    FILLS,
    MD_TICKS,
    REJECTIONS,
    SIGNALS,
    Fill,
    Order,
    Rejection,
    RiskDecision,
    Signal,
    Tick,
)
from shared.service import Service

STATE_KEY = f"{KEY_PREFIX}:risk:state"
MAX_NOTIONAL_USD = 1e15  # past any book: a fill beyond it is bad input
# The remembered fill ids, oldest first: appended per batch rather than rewritten with
# the state (5,000 ids are 135 kB of JSON, and most batches add none or a few).
FILLS_KEY = f"{KEY_PREFIX}:risk:fills"


BOOK_HEAT = Gauge(
    "risk_book_heat_ratio",
    "Gross exposure of a dual-mode book over its heat cap (1 = at the cap; seed 002)",
    ["book"],
)
BOOK_PNL_USD = Gauge(
    "risk_book_pnl_usd", "A dual-mode book's PnL after fees, marked (seed 002)", ["book"]
)


GATE_VALUE_USD = Gauge(
    "risk_gate_value_usd",
    "Gate counterfactuals (seed 002): losses the gate's refusals avoided (saved) and gains "
    "they forwent (missed), one hold after each refusal",
    ["gate", "kind"],
)


STATIC_GATES = (
    "confidence:LOW",
    "confidence:VERY_LOW",
    "conformal",
    "slippage_too_high",
    "data_quality",
    "stale_data",
)


class RiskHarmoniser(Service[RiskParams]):
    name: ClassVar[str] = "risk_harmoniser"
    # Event-time order at equal times: what execution did, then the market, then the
    # signals (a signal at t is sized on the book and quote as of t).
    inputs: ClassVar[tuple[str, ...]] = (FILLS, REJECTIONS, MD_TICKS, SIGNALS)
    upstreams: ClassVar[dict[str, str]] = {
        FILLS: "execution",
        REJECTIONS: "execution",
        MD_TICKS: "feature_bus",
        SIGNALS: "model_router",
    }
    persists_trading_state: ClassVar[bool] = True

    def __init__(self, config: RiskParams | None = None) -> None:
        super().__init__(config)
        self.engine = RiskEngine(self.config)
        self.orders_sent = 0
        self.decisions: dict[str, int] = {}
        self._dirty = False

    async def on_start(self) -> None:
        self._export_books()
        for gate in STATIC_GATES:  # present from the start, 0 until a refusal resolves
            for kind in ("saved", "missed"):
                GATE_VALUE_USD.labels(gate, kind).set(0.0)
        raw = await self.r.get(STATE_KEY)
        if raw:
            fills: list[str] = await self.r.lrange(FILLS_KEY, 0, -1)  # type: ignore[misc,assignment]
            self._load(orjson.loads(raw), fills)
            return
        # First start: take over the positions execution has booked.
        positions = await self.r.hgetall(POSITIONS_KEY)  # type: ignore[misc]
        holdings = {}
        marks = {}
        for symbol, blob in positions.items():
            doc = orjson.loads(blob)
            holdings[symbol] = [
                float(doc.get("qty", 0.0)),
                float(doc.get("avg_price", 0.0)),
                float(doc.get("realized_pnl_usd", 0.0)),
                float(doc.get("fees_usd", 0.0)),
            ]
            if float(doc.get("mark", 0.0)) > 0:
                marks[symbol] = float(doc["mark"])
        self.engine.portfolio.load({"holdings": holdings, "marks": marks})

    async def on_batch_failed(self) -> None:
        # The batch was not written: memory may be ahead of Redis (a working order counted
        # twice on the retry, say). Start from the book as last written; the failure
        # counts for the failures breaker.
        failures = self.engine.board.failures
        self.engine = RiskEngine(self.config)
        await self.on_start()
        self.engine.on_failure(failures + 1)

    def on_config(self, config: RiskParams) -> None:
        self.engine.configure(config)

    def upstream_floor_ns(self, producer: str) -> int:
        # execution writes fills and rejections only about the orders risk sent: with none
        # working, nothing can come from it until risk sends one (and that one's answer
        # comes a latency later), so risk need not wait for its watermark.
        if producer == "execution" and not self.engine.portfolio.working:
            return NEVER
        return -1

    def lookahead_ns(self, stream: str) -> int | None:
        # Orders and decisions come from signals, and from ticks while something is held
        # or working (an exit, a breaker's step-down). Fills and rejections move the book,
        # whose effect shows at the next signal or tick: so with nothing held, risk's
        # watermark runs ahead to its next signal, execution's follows it, and the loop
        # between the two does not advance one latency at a time.
        if stream == SIGNALS:
            return 0
        if stream == MD_TICKS and self.engine.has_exposure():
            return 0
        return None

    def next_timer_ns(self) -> int | None:
        return self.engine.next_timer_ns()

    def on_timer(self, ts_ns: int, out: Outbox) -> None:
        self._breaker(self.engine.on_timer(ts_ns, self.trading), out)
        self._flush(0, out)

    def on_control(self, cmd: ControlCommand, out: Outbox) -> None:
        if cmd.action == "resume" and cmd.source != "risk":
            self.engine.on_manual_resume()
            self._flush(0, out)
        self._dirty = True

    # ---- handling ------------------------------------------------------------------------

    def on_message(self, entry: Entry, out: Outbox) -> None:
        msg = entry.message
        eng = self.engine
        if isinstance(msg, Tick):
            cmd = eng.on_tick(
                msg.symbol,
                msg.bid,
                msg.ask,
                msg.bid_size,
                msg.ask_size,
                msg.volume,
                msg.ts_ns,
                self.trading,
                msg.quality,
            )
            self._breaker(cmd, out)
            self._flush(msg.trace_ts_ns, out)
        elif isinstance(msg, Fill):
            notional_usd = msg.qty * msg.price
            if not (abs(notional_usd) < MAX_NOTIONAL_USD and abs(msg.fee) < MAX_NOTIONAL_USD):
                # Decodable but out of any range (1e308 units): booked, it would overflow
                # the equity every later decision sizes on; the dlq says why instead.
                reason = f"fill out of range: notional {notional_usd} USD, fee {msg.fee} USD"
                out.dead.append(dead_letter(self.name, entry, reason))
                return
            signed = msg.qty if msg.side == "buy" else -msg.qty
            self._dirty |= eng.on_fill(
                msg.fill_id,
                msg.order_id,
                msg.symbol,
                signed,
                msg.price,
                msg.fee + msg.funding_usd,  # risk's book pays the funding as a cost
                msg.ts_ns,
            )
        elif isinstance(msg, Rejection):
            self._dirty |= eng.on_rejection(msg.order_id)
        elif isinstance(msg, Signal):
            decision = eng.on_signal(msg, self.trading)
            if eng.command is not None:  # a breaker the signal tripped (the PANIC regime)
                self._breaker(eng.command, out)
                eng.command = None
                self._flush(msg.trace_ts_ns, out)
            if decision is not None:
                self._emit(msg.trace_ts_ns, decision, out)

    def _flush(self, trace_ts_ns: int, out: Outbox) -> None:
        """The engine's exit orders and breaker events, in the order it made them."""
        pending = self.engine.pending
        if pending:
            self.engine.pending = []
            for d in pending:
                self._emit(trace_ts_ns, d, out)
            self._dirty = True

    def _emit(self, trace_ts_ns: int, d: Decision, out: Outbox) -> None:
        if d.action == "order":
            out.emit(
                Order(
                    trace_ts_ns=trace_ts_ns,
                    order_id=d.order_id,
                    symbol=d.symbol,
                    ts_ns=d.ts_ns,
                    side=d.side,  # type: ignore[arg-type]
                    qty=d.qty,
                    position_size_usd=d.target_usd,
                    edge_blended_bps=d.edge_bps,
                    var_pct=d.var_pct,
                    decision_price=d.price,
                    reduce_only=d.reduce_only,
                    reason=d.reason,
                )
            )
            self.orders_sent += 1
            self._dirty = True
        key = f"{d.action}:{d.reason.split(':')[0]}"
        self.decisions[key] = self.decisions.get(key, 0) + 1
        # One per signal: validated from a dict (the same checks as RiskDecision(...),
        # without the keyword-argument layer, which costs as much as the validation).
        out.emit(
            RiskDecision.checked(
                {
                    "trace_ts_ns": trace_ts_ns,
                    "symbol": d.symbol,
                    "ts_ns": d.ts_ns,
                    "action": d.action,
                    "reason": d.reason,
                    "trading_state": self.trading.state,
                    "edge_blended_bps": d.edge_bps,
                    "position_size_usd": d.target_usd,
                    "var_pct": d.var_pct,
                    "order_id": d.order_id,
                    "uncertainty_bps": d.uncertainty_bps,
                    "cost_bps": d.cost_bps,
                    "portfolio_var_pct": d.portfolio_var_pct,
                    "confidence_level": d.confidence_level,
                    "book": d.book,
                }
            )
        )

    def _breaker(self, cmd: ControlCommand | None, out: Outbox) -> None:
        """A breaker's command: applied here at once, saved and told to every service in
        the batch's transaction."""
        if cmd is not None:
            self.apply_control(cmd, out, announce=True)

    def _export_books(self) -> None:
        """Heat and net PnL per dual-mode book (0 while the desk runs one book)."""
        eng = self.engine
        on = self.config.dual_mode.enabled
        for book in BOOKS:
            BOOK_HEAT.labels(book).set(eng.dual.heat(book) if on else 0.0)
            BOOK_PNL_USD.labels(book).set(eng.dual.pnl(book).net_usd if on else 0.0)
        for gate, value in eng.counterfactuals.gates.items():
            GATE_VALUE_USD.labels(gate, "saved").set(value.saved_usd)
            GATE_VALUE_USD.labels(gate, "missed").set(value.missed_usd)

    def on_batch_end(self, out: Outbox) -> None:
        self._export_books()
        if out.dead:  # inputs that failed: the failures breaker counts them
            self.engine.on_failure(len(out.dead))
            self._dirty = True
        if self._dirty:
            blob = orjson.dumps(self._dump())
            out.call(lambda pipe: pipe.set(STATE_KEY, blob))
            fills = self.engine.portfolio.take_unsaved_fills()
            if fills:
                keep = self.engine.portfolio.fill_memory
                out.call(lambda pipe: pipe.rpush(FILLS_KEY, *fills))
                out.call(lambda pipe: pipe.ltrim(FILLS_KEY, -keep, -1))
            self._dirty = False

    # ---- state -----------------------------------------------------------------------

    def _dump(self) -> dict[str, Any]:
        eng = self.engine
        return {
            "portfolio": eng.portfolio.to_dict(fills=False),  # fill ids: FILLS_KEY
            "kelly": eng.kelly.as_dict(),
            "loss_streak": eng.streak.count,
            "day": eng.board.day,
            "day_start_equity_usd": eng.board.day_start_equity_usd,
            "breakers": eng.board.to_dict(),
            "dual": {
                "books": eng.dual.to_dict(),
                "order_book": eng.order_book,
                "governors": {b: g.to_dict() for b, g in eng.governors.items()},
                "thresholds": eng.router.meta_thresholds,
                "trips": [[b, s, v] for (b, s), v in eng.book_trip_usd.items()],
            },
            "exits": {
                "opened": {s: [o.ts_ns, o.horizon, o.horizon_s] for s, o in eng.opened.items()},
                "trip_pnl_usd": eng.trip_pnl_usd,
                "order_horizon": eng.order_horizon,
            },
        }

    def _load(self, doc: dict[str, Any], fills: list[str]) -> None:
        eng = self.engine
        # A state written before FILLS_KEY existed carries its fill ids itself.
        eng.portfolio.load(doc.get("portfolio", {}), fills)
        eng.kelly.load(doc.get("kelly", {}))
        eng.streak.count = int(doc.get("loss_streak", 0))
        eng.board.load(
            doc.get("breakers", {}),
            int(doc.get("day", 0)),
            float(doc.get("day_start_equity_usd", self.config.equity_usd)),
        )
        dual = doc.get("dual")
        if dual:
            eng.dual = DualBooks.from_dict(dual["books"])
            eng.dual.caps = self.config.dual_mode.caps
            eng.order_book = {str(k): str(v) for k, v in dual.get("order_book", {}).items()}
            for b, g in dual.get("governors", {}).items():
                if b in eng.governors:
                    eng.governors[b] = WinRateGovernor.from_dict(g)
            eng.router.meta_thresholds = {
                str(b): float(t) for b, t in dual.get("thresholds", {}).items()
            }
            eng.book_trip_usd = {(str(b), str(s)): float(v) for b, s, v in dual.get("trips", [])}
        e = doc.get("exits", {})
        eng.opened = {
            str(s): ex.Opened(int(ts), str(h), float(hs))
            for s, (ts, h, hs) in e.get("opened", {}).items()
        }
        eng.trip_pnl_usd = {str(k): float(v) for k, v in e.get("trip_pnl_usd", {}).items()}
        eng.order_horizon = {str(k): str(v) for k, v in e.get("order_horizon", {}).items()}

    def health_details(self) -> dict[str, Any]:
        eng = self.engine
        dual = (
            {"books": eng.dual.snapshot(), "routing": eng.router.stats.as_dict()}
            if self.config.dual_mode.enabled
            else None
        )
        cf = eng.counterfactuals
        return {
            "dual_mode": dual,
            "counterfactuals": {
                "gates": cf.summary(),
                "suggestions": {g: cf.suggest(g) for g in cf.gates},
                "pending": cf.pending,
            },
            "orders_sent": self.orders_sent,
            "decisions": dict(self.decisions),
            "equity_usd": round(eng.portfolio.equity_usd(), 2),
            "positions": {s: eng.portfolio.exposure_qty(s) for s in eng.symbols},
            "working_orders": len(eng.portfolio.working),
            "portfolio_var_pct": round(eng.portfolio_var_pct(), 4) if eng.symbols else 0.0,
            "breakers": {
                n: {"level": t.level, "reason": t.reason} for n, t in eng.board.trips.items()
            },
        }


SERVICE = RiskHarmoniser
