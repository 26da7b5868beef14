"""The paper broker's core: orders and ticks in, fills, rejections and snapshots out.

No I/O, no clock: the service feeds it decoded messages and timers in event-time order
(shared/merge.py) and writes what it puts in ``Outputs`` (with the batch's acks, in one
transaction). Market time is the ticks' ``ts_ns``; an order reaches the market at its
decision time plus ``latency_ms`` (at least 1 ns: the lookahead that lets risk and
execution advance together). An order acts at its arrival as a timer (``next_timer_ns``):
every tick up to that time has been handled and none after, so the newest quote is the
one in force; every fill is priced on it, so ``fill.quote_ts_ns <= fill.ts_ns`` and no
fill ever sees a later quote. Immediate rejections also come back after the latency.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from services.execution import fill_model as fm
from services.execution import impact
from services.execution.config import ExecutionConfig
from services.execution.positions import Account, PositionBook, total_pnl_usd
from services.execution.quotes import QuoteHistory
from services.execution.strategies import (
    QTY_EPS,
    WorkingOrder,
    act,
    choose,
    new_working,
    reschedule,
)
from shared.control import TradingState
from shared.messages import Fill, Order, Position, Rejection, Side, Tick

HALT_REASON = "cancelled:trading_halted"
MIN_PRICE = 1e-12  # below it, a price is not a price (bps of it overflow)
MAX_NOTIONAL_USD = 1e15


def fill_id(order_id: str, seq: int) -> str:
    """Deterministic per (order, fill sequence number): a replayed fill keeps its id."""
    return hashlib.sha256(f"{order_id}:{seq}".encode()).hexdigest()[:24]


@dataclass(slots=True)
class Completed:
    """An order that left the working set: for fill-rate metrics."""

    symbol: str
    qty: float
    filled_qty: float
    outcome: str
    fill_type: fm.FillType = "none"


@dataclass(frozen=True, slots=True)
class CostCheck:
    """One fill's realised cost beside its order's pre-trade estimate (bps, + = cost):
    seed 000's daily metric 4, simulator slippage against realised cost."""

    symbol: str
    predicted_bps: float
    realised_bps: float


@dataclass(slots=True)
class Outputs:
    """What one batch (or control command, or timer pass) changed."""

    fills: list[Fill] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    working_put: dict[str, WorkingOrder] = field(default_factory=dict)
    working_del: set[str] = field(default_factory=set)
    done: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> (outcome, ts_ns)
    books: set[str] = field(default_factory=set)
    equity: list[dict[str, float]] = field(default_factory=list)
    completed: list[Completed] = field(default_factory=list)
    costs: list[CostCheck] = field(default_factory=list)
    duplicates: int = 0
    account_changed: bool = False


class ExecutionEngine:
    def __init__(self, cfg: ExecutionConfig) -> None:
        self.stats: dict[str, impact.DailyStats] = {}  # the day's volume and volatility
        self.cfg = cfg
        self.quotes = QuoteHistory(cfg.quote_history)
        self.books: dict[str, PositionBook] = {}
        self.account = Account(cfg.starting_equity_usd)
        self.working: dict[str, WorkingOrder] = {}
        self.by_symbol: dict[str, dict[str, WorkingOrder]] = {}  # index of ``working``
        self.done: OrderedDict[str, str] = OrderedDict()
        self.recent: dict[str, deque[tuple[int, Side]]] = {}
        self.last_snapshot_ns: dict[str, int] = {}
        self.last_equity_ns = 0

    # ---- inputs ------------------------------------------------------------------------

    def restore(self, working: dict[str, WorkingOrder]) -> None:
        """Working orders read back from Redis at start."""
        self.working, self.by_symbol = {}, {}
        for w in working.values():
            self._add(w)

    def _add(self, w: WorkingOrder) -> None:
        self.working[w.order_id] = w
        self.by_symbol.setdefault(w.symbol, {})[w.order_id] = w

    def seen(self, order_id: str) -> bool:
        return order_id in self.done or order_id in self.working

    @property
    def latency_ns(self) -> int:
        """Decision -> market, in event time; at least 1 ns (see the module docstring)."""
        return max(1, int(self.cfg.latency_ms * 1e6))

    def next_timer_ns(self) -> int | None:
        """When the next working order acts by itself: an "at" act at its due time, or
        any order's expiry."""
        nxt: int | None = None
        for w in self.working.values():
            t = w.due_ns if w.mode == "at" else w.expires_ns
            if nxt is None or t < nxt:
                nxt = t
        return nxt

    def works_on_ticks(self) -> bool:
        """Whether a tick can make a fill now (an order working tick by tick)."""
        return any(w.mode == "tick" for w in self.working.values())

    def on_order(self, order: Order, trading: TradingState, out: Outputs) -> None:
        if self.seen(order.order_id):
            out.duplicates += 1  # redelivered: filled, rejected or working already
            return
        # Risk's own breakers (reason "breaker:...") gate risk's orders at the source;
        # here they would act a pub/sub hop late (an order sent just after risk lifted
        # one refused), and the backtest, which has no pub/sub, would differ.
        operator = not trading.reason.startswith("breaker:")
        if trading.halted and operator:
            self._reject_order(order, "trading_halted", out)
            return
        notional_usd = order.qty * order.decision_price
        if not (order.decision_price > MIN_PRICE and notional_usd < MAX_NOTIONAL_USD):
            # Decodable but out of any range (5e-324 or 1e308): no slippage or fill could
            # be computed on it; refused with a reason.
            self._reject_order(order, "out_of_range", out)
            return
        book = self.books.get(order.symbol)
        pos = book.qty if book is not None else 0.0
        signed = order.qty if order.side == "buy" else -order.qty
        reduces = pos != 0 and (signed > 0) != (pos > 0)
        reducing = trading.state == "REDUCING" and operator
        if (order.reduce_only or reducing) and not reduces:
            self._reject_order(order, "reduce_only_would_increase", out)
            return
        if reduces and (order.reduce_only or reducing):
            order = order.model_copy(update={"qty": min(order.qty, abs(pos))})
        recent = self.recent.setdefault(order.symbol, deque(maxlen=64))
        window_ns = int(self.cfg.strategies.twap_persistent_window_ms * 1e6)
        same_side = 1 + sum(
            1 for ts, side in recent if side == order.side and order.ts_ns - ts <= window_ns
        )
        recent.append((order.ts_ns, order.side))
        strategy, _why = choose(
            order,
            self.quotes.newest(order.symbol),
            self.quotes.average_volume(order.symbol),
            same_side,
            self.cfg.strategies,
        )
        w = new_working(order, strategy, self.cfg)
        self._add(w)
        out.working_put[w.order_id] = w

    def market(self, symbol: str) -> fm.Market:
        """The impact's inputs for ``symbol`` now (V = 0 before its second quote)."""
        c = self.cfg
        st = self.stats.get(symbol)
        if st is None:
            return fm.Market(0.0, 0.0, c.impact_coeff, c.impact_fallback_bps)
        return fm.Market(st.daily_volume, st.sigma_daily_bps, c.impact_coeff, c.impact_fallback_bps)

    @property
    def cfg(self) -> ExecutionConfig:
        return self._cfg

    @cfg.setter
    def cfg(self, c: ExecutionConfig) -> None:
        """A new config (a reload sets it): the day's stats take its parameters at once."""
        self._cfg = c
        for known in self.stats.values():
            known.configure(c.volume_half_life_s, c.prior_daily_vol_bps, c.prior_weight_s)

    def _observe(self, tick: Tick) -> None:
        c = self.cfg
        st = self.stats.get(tick.symbol)
        if st is None:
            st = self.stats[tick.symbol] = impact.DailyStats(
                c.volume_half_life_s, c.prior_daily_vol_bps, c.prior_weight_s
            )
        # A quote without traded volume counts its mean touch size (as feature_bus does).
        traded = tick.volume if tick.volume is not None else (tick.bid_size + tick.ask_size) / 2
        st.add(tick.ts_ns, fm.mid_price(tick), traded)

    def on_tick(self, tick: Tick, trading: TradingState, out: Outputs) -> None:
        if not self.quotes.add(tick, self.cfg.strategies.volume_ewma_ticks):
            return  # not newer than what we have: the history only moves forward
        self._observe(tick)
        book = self.books.get(tick.symbol)
        if book is not None:
            # The total over every book only when a new day starts (not on every tick).
            if self.account.new_day(tick.ts_ns) and self.account.roll(
                tick.ts_ns, total_pnl_usd(self.books)
            ):
                out.account_changed = True
            book.mark = fm.mid_price(tick)
            last = self.last_snapshot_ns.get(tick.symbol, 0)
            if book.qty != 0 and tick.ts_ns - last >= self.cfg.snapshot_interval_ms * 1e6:
                self._snapshot(tick.symbol, tick.ts_ns, tick.trace_ts_ns, out)
        if trading.halted:
            return  # nothing fills after a halt
        # An order working tick by tick acts on the first tick at or after its due time
        # ("at" acts are timers: on_timer).
        due = [
            w
            for w in self.by_symbol.get(tick.symbol, {}).values()
            if w.mode == "tick" and w.due_ns <= tick.ts_ns
        ]
        for w in due:
            self._advance(w, out)

    def on_timer(self, ts_ns: int, trading: TradingState, out: Outputs) -> None:
        """Event time ``ts_ns``: every tick up to it has been handled and none after.
        Orders due by then act on the quote in force (the newest); expired ones go."""
        if trading.halted:
            return
        for w in list(self.working.values()):
            if w.order_id not in self.working:
                continue
            if w.mode == "at" and w.due_ns <= ts_ns:
                # In event order the newest quote is the one in force; for an order that
                # came late (its producer stepped over) it is the history's.
                self._act(w, self.quotes.in_force(w.symbol, w.due_ns)[0], w.due_ns, out)
            elif w.expires_ns <= ts_ns:
                self._cancel(w, "expired", w.expires_ns, out)

    def halt(self, ts_ns: int, out: Outputs) -> None:
        """Cancel every working order: one rejection each, so risk clears its working qty."""
        for w in list(self.working.values()):
            self._cancel(w, HALT_REASON, ts_ns, out)

    def flatten(self, now_ns: int, out: Outputs) -> None:
        """Cancel everything working, then close every position at market now, all at
        once on the newest quote (impact priced in, no participation cap)."""
        self.halt(now_ns, out)
        for symbol, book in list(self.books.items()):
            if abs(book.qty) <= QTY_EPS:
                continue
            side: Side = "sell" if book.qty > 0 else "buy"
            order_id = f"flatten:{symbol}:{now_ns}"
            q = self.quotes.newest(symbol)
            if q is None:
                out.rejections.append(
                    Rejection(
                        order_id=order_id,
                        symbol=symbol,
                        ts_ns=now_ns,
                        reason="flatten_no_quote",
                        side=side,
                        qty=abs(book.qty),
                        strategy="flatten",
                    )
                )
                continue
            at_ns = max(now_ns, q.ts_ns)
            w = WorkingOrder(
                order_id=order_id,
                symbol=symbol,
                side=side,
                qty=abs(book.qty),
                strategy="flatten",
                decision_price=fm.mid_price(q),
                decision_ts_ns=now_ns,
                arrival_ns=at_ns,
                trace_ts_ns=now_ns,
                expires_ns=at_ns + 1,
                due_ns=at_ns,
            )
            self._add(w)
            self._act(w, q, at_ns, out)
            if order_id in self.working:  # nothing displayed to take: say so
                self._cancel(w, "flatten_no_liquidity", at_ns, out)

    # ---- working an order --------------------------------------------------------------

    def _advance(self, w: WorkingOrder, out: Outputs) -> None:
        """Act while the next act's quote is known: an "at" act needs the quote in force
        at ``due_ns`` confirmed; a "tick" act needs a tick at or after ``due_ns``."""
        while w.order_id in self.working:
            if w.mode == "at":
                q, confirmed = self.quotes.in_force(w.symbol, w.due_ns)
                if not confirmed:
                    return
                self._act(w, q, w.due_ns, out)
            else:
                nxt = self.quotes.first_at_or_after(w.symbol, w.due_ns)
                if nxt is None:
                    return
                self._act(w, nxt, nxt.ts_ns, out)

    def _act(self, w: WorkingOrder, q: Tick | None, at_ns: int, out: Outputs) -> None:
        if at_ns >= w.expires_ns:
            self._cancel(w, "expired", at_ns, out)
            return
        if q is None:
            self._cancel(w, "no_quote_at_arrival" if w.acts == 0 else "no_quote", at_ns, out)
            return
        if w.strategy != "flatten" and at_ns - q.ts_ns > self.cfg.max_quote_age_ms * 1e6:
            self._cancel(w, "stale_quote", at_ns, out)
            return
        m = self.market(w.symbol)
        if w.acts == 0:
            self._arrive(w, q, m)
        priced = act(w, q, self.cfg, m)
        if isinstance(priced, str):
            self._cancel(w, priced, at_ns, out)
            return
        if priced is not None:
            self._book(w, priced, at_ns, out)
        if w.done:
            self._finish(w, "filled", out)
            return
        if w.cap_qty > 0 and w.filled_qty >= w.cap_qty * (1 - 1e-9):
            self._cancel(w, "participation_cap", at_ns, out)  # the day's share is used up
            return
        reschedule(w, at_ns, self.cfg)
        out.working_put[w.order_id] = w

    def _arrive(self, w: WorkingOrder, q: Tick, m: fm.Market) -> None:
        """At the first act: the order's cap of the day's volume (seed 001 §6; none for
        the kill switch) and its pre-trade cost estimate on the quote in force."""
        if w.strategy != "flatten":
            cap = fm.daily_cap_qty(m, self.cfg.max_daily_participation_pct)
            w.cap_qty = cap if math.isfinite(cap) else 0.0
        est = impact.estimate(
            fm.half_spread_bps(q),
            w.qty,
            m.daily_volume,
            m.sigma_daily_bps,
            m.coeff,
            self.cfg.latency_ms,
            self.cfg.latency_bps_per_10ms,
            depth=fm.depth(q, w.side),
            fallback_bps=m.fallback_bps,
        )
        w.predicted_bps = est.expected_bps

    def _book(self, w: WorkingOrder, p: fm.PricedFill, at_ns: int, out: Outputs) -> None:
        """Turn a priced fill into a Fill, and book it on the position and the account."""
        assert p.quote.ts_ns <= at_ns, "a fill may never use a quote later than its time"
        fees = self.cfg.fees_for(p.quote.venue, w.symbol)
        fee = fm.fee_usd(p.qty, p.price, w.side, p.liquidity, fees)
        fee_bps = fee / (p.qty * p.price) * 1e4
        w.fill_seq += 1
        w.filled_qty += p.qty
        if w.done:
            w.filled_qty = w.qty  # absorb float dust so the order closes exactly
        book = self.books.setdefault(w.symbol, PositionBook())
        if self.account.new_day(at_ns) and self.account.roll(at_ns, total_pnl_usd(self.books)):
            out.account_changed = True
        signed = p.qty * fm.direction(w.side)
        funding = book.funding_due(signed, at_ns, self.cfg.funding_rate_for(w.symbol))
        book.apply_fill(signed, p.price, fee, at_ns, funding)
        newest = self.quotes.newest(w.symbol) or p.quote
        book.mark = fm.mid_price(newest)
        out.books.add(w.symbol)
        out.account_changed = True
        slip_bps = fm.slippage_bps(w.side, p.price, w.decision_price)
        out.costs.append(CostCheck(w.symbol, w.predicted_bps, slip_bps))
        out.fills.append(
            Fill.checked(
                {
                    "trace_ts_ns": w.trace_ts_ns,
                    "fill_id": fill_id(w.order_id, w.fill_seq),
                    "order_id": w.order_id,
                    "symbol": w.symbol,
                    "ts_ns": at_ns,
                    "side": w.side,
                    "qty": p.qty,
                    "price": p.price,
                    "fee": fee,
                    "funding_usd": funding,
                    "fill_type": "full" if w.done else "partial",
                    "slippage_bps": slip_bps,
                    "liquidity": p.liquidity,
                    "venue": p.quote.venue,
                    "fill_seq": w.fill_seq,
                    "strategy": w.strategy,
                    "decision_price": w.decision_price,
                    "quote_ts_ns": p.quote.ts_ns,
                    "mid": fm.mid_price(p.quote),
                    "half_spread_bps": p.half_spread_bps,
                    "impact_bps": p.impact_bps if math.isfinite(p.impact_bps) else None,
                    "fee_bps": fee_bps,
                    "remaining_qty": w.remaining,
                    "time_to_fill_ms": (at_ns - w.decision_ts_ns) / 1e6,
                }
            )
        )
        self._snapshot(w.symbol, at_ns, w.trace_ts_ns, out)

    def _cancel(self, w: WorkingOrder, reason: str, ts_ns: int, out: Outputs) -> None:
        out.rejections.append(
            Rejection(
                trace_ts_ns=w.trace_ts_ns,
                order_id=w.order_id,
                symbol=w.symbol,
                ts_ns=max(ts_ns, 1),
                reason=reason,
                side=w.side,
                qty=w.remaining,
                filled_qty=w.filled_qty,
                strategy=w.strategy,
                fill_type=fm.fill_type(w.qty, w.filled_qty, reason),
            )
        )
        self._finish(w, "cancelled" if w.filled_qty > 0 else "rejected", out, reason)

    def _finish(self, w: WorkingOrder, outcome: str, out: Outputs, reason: str = "") -> None:
        self.working.pop(w.order_id, None)
        self.by_symbol.get(w.symbol, {}).pop(w.order_id, None)
        out.working_put.pop(w.order_id, None)
        out.working_del.add(w.order_id)
        kind = fm.fill_type(w.qty, w.filled_qty, reason)
        out.completed.append(Completed(w.symbol, w.qty, w.filled_qty, outcome, kind))
        self._mark_done(w.order_id, outcome, w.decision_ts_ns, out)

    def _reject_order(self, order: Order, reason: str, out: Outputs) -> None:
        out.rejections.append(
            Rejection(
                trace_ts_ns=order.trace_ts_ns,
                order_id=order.order_id,
                symbol=order.symbol,
                ts_ns=order.ts_ns + self.latency_ns,  # the venue's answer takes the latency
                reason=reason,
                side=order.side,
                qty=order.qty,
                filled_qty=0.0,
                fill_type="none",
            )
        )
        out.completed.append(Completed(order.symbol, order.qty, 0.0, "rejected", "none"))
        self._mark_done(order.order_id, "rejected", order.ts_ns, out)

    def _mark_done(self, order_id: str, outcome: str, ts_ns: int, out: Outputs) -> None:
        self.done[order_id] = outcome
        while len(self.done) > self.cfg.done_orders_max:
            self.done.popitem(last=False)
        out.done[order_id] = (outcome, ts_ns)

    # ---- snapshots ---------------------------------------------------------------------

    def _snapshot(self, symbol: str, ts_ns: int, trace_ts_ns: int, out: Outputs) -> None:
        book = self.books[symbol]
        total = total_pnl_usd(self.books)
        self.last_snapshot_ns[symbol] = ts_ns
        out.positions.append(
            Position.checked(
                {
                    "trace_ts_ns": trace_ts_ns,
                    "symbol": symbol,
                    "ts_ns": ts_ns,
                    "qty": book.qty,
                    "avg_price": book.avg_price,
                    "mark": book.mark,
                    "position_usd": book.qty * book.mark,
                    "realized_pnl_usd": book.realized_pnl_usd,
                    "unrealized_pnl_usd": book.unrealized_pnl_usd,
                    "fees_usd": book.fees_usd,
                    "funding_usd": book.funding_usd,
                    "total_pnl_usd": book.total_pnl_usd,
                    "account_pnl_usd": total,
                    "daily_pnl_usd": self.account.daily_pnl_usd(total),
                    "equity_usd": self.account.equity_usd(total),
                }
            )
        )
        if ts_ns - self.last_equity_ns >= self.cfg.snapshot_interval_ms * 1e6:
            self.last_equity_ns = ts_ns
            out.equity.append(
                {
                    "ts_ns": ts_ns,
                    "equity_usd": self.account.equity_usd(total),
                    "total_pnl_usd": total,
                    "daily_pnl_usd": self.account.daily_pnl_usd(total),
                }
            )
