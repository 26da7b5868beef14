"""The risk decision, pure: ticks, fills, rejections and signals in; decisions (with or
without an order), exit orders, breaker events and breaker commands out. No I/O, so the
same engine runs live, in replay, in the benchmark and under hypothesis.

A signal's decision, in order (the first failing step is the reason code):
1. HALTED -> ``halt``.
2. quote checks (no_quote, stale_quote, price_band); a signal more than
   max_signal_lag_ms of event time behind the newest data handled (it came late), or a
   quote flagged stale / jump / gap / locked -> no new positions (``stale_data``,
   ``data_quality:<flags>``, reduce only).
3. blend -> edge, uncertainty; costs -> net edge = |edge| - costs - margin.
4. net edge > 0: size toward sign(edge) (never shrink a same-side position on a
   weaker edge); edge against the position by > exit_edge_bps: target 0; else
   ``edge_below_costs``.
5. limits (incl. portfolio VaR, open risk on the stops, REDUCING) clip the target; tiny
   or in-band changes -> ``below_min_order`` / ``within_band``; order rate ->
   ``order_rate`` / ``symbol_cooldown``; the pre-trade slippage estimate above its
   limits -> ``slippage_too_high`` (never for a reduction); else an order for target -
   current (filled + working).

A tick: the marks, the covariance, the breakers when due (breakers.py), then the
name's exit when one is due (exits.py: ``exit:stop_loss``, ``exit:take_profit``,
``exit:time``; a breaker's ``exit:drawdown_step_down``, ``exit:emergency_close``).
A timer (``next_timer_ns``): the breakers with no data (the data-latency deadline).

About 670 lines, past the style's 400, for a reason: the decision for one signal is one
pass whose steps share a dozen locals (quote, equity, covariance, costs, the book), on
the hot path; the maths of each step live in their own modules (blend, costs, sizing,
limits, var, breakers, exits) and this one only sequences them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from services.calibration.conformal import pessimistic_edge_bps
from services.calibration.counterfactuals import GateCounterfactuals
from services.calibration.governor import for_book
from services.calibration.thresholds import level_of, reason_code
from services.risk_harmoniser import breakers as brk
from services.risk_harmoniser import exits as ex
from services.risk_harmoniser.blend import SignalBook, blend_book
from services.risk_harmoniser.books import DualBooks
from services.risk_harmoniser.config import RiskParams
from services.risk_harmoniser.costs import (
    horizon_s,
    net_edge_bps,
    round_trip_fees_bps,
    slippage_estimate,
    slippage_too_high,
    total_cost_bps,
)
from services.risk_harmoniser.limits import Book, Caps, OrderRate, quote_check
from services.risk_harmoniser.modes import HybridGateRouter, select_mode
from services.risk_harmoniser.portfolio import Portfolio
from services.risk_harmoniser.profiles import BOOKS
from services.risk_harmoniser.sizing import KellyTracker, SizeInputs, full_size_usd, size
from services.risk_harmoniser.var import (
    DAY_S,
    EwmaCovariance,
    portfolio_var_pct,
    position_var_pct,
)
from shared.control import ControlCommand, TradingState, state_after
from shared.messages import SIGNALS, Signal

_EWMA_DEPTH = 0.1  # weight of the newest touch depth / volume rate
# The data-quality flags of feature_bus (services/feature_bus/quality.py) that stop a
# quote from opening or adding to a position; reductions still pass.
GATING_FLAGS = frozenset(("stale", "jump", "gap", "locked"))


def order_id_for(sig: Signal) -> str:
    """Deterministic: the same signal gives the same order id, in the stack (whatever
    Redis ids its entries got), on a retry, and in the backtest."""
    key = f"{SIGNALS}:{sig.symbol}:{sig.ts_ns}:{sig.model_id}:{sig.horizon}:{sig.features_hash}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass(slots=True)
class Quote:
    bid: float = 0.0
    ask: float = 0.0
    ts_ns: int = 0
    depth_usd: float = 0.0  # EWMA of the touch depth, both sides
    volume_usd_per_s: float = 0.0  # EWMA, per covariance sample
    volume_acc_usd: float = 0.0
    quality: str = ""  # the data-quality flags of the newest tick ("" when clean)

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def spread_bps(self) -> float:
        mid = self.mid
        return (self.ask - self.bid) / mid * 1e4 if mid > 0 else 0.0


@dataclass(frozen=True, slots=True)
class NameStatics:
    """What a decision needs from the config about the names, resolved once per config
    and set of names instead of on every signal; index-aligned with ``RiskEngine.symbols``."""

    p: RiskParams  # the config these were resolved from
    asset_class: tuple[str, ...]
    sector: tuple[str, ...]
    caps: tuple[Caps, ...]
    funding_bps_per_hour: tuple[float, ...]


@dataclass(slots=True)
class Decision:
    symbol: str
    action: str  # order / reject / halt
    reason: str
    edge_bps: float = 0.0
    uncertainty_bps: float = 0.0
    cost_bps: float = 0.0
    target_usd: float = 0.0
    var_pct: float = 0.0
    portfolio_var_pct: float = 0.0
    order_id: str = ""
    side: str = ""
    qty: float = 0.0
    price: float = 0.0
    reduce_only: bool = False
    ts_ns: int = 0  # an exit's or a breaker event's event time (a signal's: its own)
    confidence_level: str = ""  # seed 001 §5 level of the signal's confidence
    book: str = ""  # the dual-mode book of an order ("scalp", "runner"; "" without)


# The gates whose refusals are counterfactuals (a new position's, on an edge above costs
# or a confidence level): the reason's first part
COUNTERFACTUAL_GATES = frozenset(
    {"confidence", "conformal", "dual", "slippage_too_high", "data_quality", "stale_data"}
)
MAX_ORDER_BOOKS = 100_000  # order id -> book, bounded (the oldest go)


class RiskEngine:
    def __init__(self, p: RiskParams) -> None:
        self.p = p
        self.portfolio = Portfolio(p.equity_usd)
        v = p.var
        self.cov = EwmaCovariance(
            v.sample_ms / 1000.0,
            v.ewma_lambda,
            v.horizon_s,
            v.prior_correlation,
            decay_s=DAY_S,  # ewma_lambda is per day (RiskMetrics' 0.94)
            clip_sigmas=v.clip_sigmas,
        )
        self.symbols: list[str] = []
        self.quotes: list[Quote] = []
        self.books: list[SignalBook] = []
        self.vol_hist: list[brk.VolPercentile] = []
        self.kelly = KellyTracker()
        self.streak = brk.LossStreak()
        self.rate = OrderRate()
        self.now_ns = 0
        self.breakers_due = False  # a fill moved the book: check the breakers at the next tick
        self._statics: NameStatics | None = None
        self.board = brk.BreakerBoard(p.equity_usd)  # the breakers (breakers.py)
        # Exits (exits.py): when each open position opened, the PnL of its round trip so
        # far, and the horizon of each working order (the one that opens a position
        # gives it its time stop).
        self.opened: dict[str, ex.Opened] = {}
        self.trip_pnl_usd: dict[str, float] = {}
        self.order_horizon: dict[str, str] = {}
        # Outputs of ticks and timers for the service to write: exit orders and breaker
        # events (decisions with action "breaker").
        self.pending: list[Decision] = []
        self.command: ControlCommand | None = None  # a signal's breaker command (PANIC)
        # The dual-mode desk (seed 002, docs/dual_mode.md), with ``dual_mode.enabled``:
        # the scalp and runner books, the hybrid gate router, the book of each order.
        self.dual = DualBooks(p.equity_usd, p.dual_mode.caps)
        self.router = HybridGateRouter(p.dual_mode)
        self.order_book: dict[str, str] = {}
        # seed 002's gate counterfactuals: the new positions gates refused, and what they
        # would have made one hold (costs.default_hold_s) later, gross of costs
        self.counterfactuals = GateCounterfactuals(horizon_ns=int(p.costs.default_hold_s * 1e9))
        self._full_usd = 0.0
        # seed 002's win-rate governors, fed by each book's closed round trips
        self.governors = {b: for_book(b) for b in BOOKS}
        self.book_trip_usd: dict[tuple[str, str], float] = {}  # (book, symbol) -> PnL so far

    def configure(self, p: RiskParams) -> None:
        """A new config: limits apply at once; learned state (book, covariance) stays,
        the covariance recomputed from its kept returns under new ``var.*`` keys."""
        old = self.p
        self.p = p
        self.dual.caps = p.dual_mode.caps
        self.counterfactuals.horizon_ns = int(p.costs.default_hold_s * 1e9)
        if p.equity_usd != old.equity_usd:  # as a restart with it would start
            self.dual.equity_usd = p.equity_usd
        thresholds = self.router.meta_thresholds
        self.router = HybridGateRouter(p.dual_mode, self.router.stats)
        if p.dual_mode.governor:
            self.router.meta_thresholds = thresholds
        # A new equity_usd moves the equity by the change: the breakers' references move
        # with it (a reload that lowers the capital is no loss).
        shift_usd = p.equity_usd - self.portfolio.starting_equity_usd
        self.portfolio.starting_equity_usd = p.equity_usd
        self.board.rebase(shift_usd)
        v = p.var
        priors = [
            v.prior_daily_vol_pct.of(p.symbol_info(s).asset_class) / 100.0 for s in self.symbols
        ]
        n_vols = p.breakers.vol_history
        if v != old.var or n_vols != old.breakers.vol_history or priors != self.cov.prior_vols:
            vols = self.cov.rebuild(
                v.sample_ms / 1000.0,
                v.ewma_lambda,
                v.horizon_s,
                v.prior_correlation,
                priors,
                decay_s=DAY_S,
                clip_sigmas=v.clip_sigmas,
                keep_vols=n_vols,
            )
            self.vol_hist = [brk.VolPercentile(n_vols) for _ in self.symbols]
            for row in vols:
                for k, vol in enumerate(row):
                    self.vol_hist[k].add(vol)

    def _index(self, symbol: str) -> int:
        idx = self.cov.index.get(symbol)
        if idx is None:
            cls = self.p.symbol_info(symbol).asset_class
            idx = self.cov.add(symbol, self.p.var.prior_daily_vol_pct.of(cls) / 100.0)
            self.symbols.append(symbol)
            self.quotes.append(Quote())
            self.books.append(SignalBook())
            self.vol_hist.append(brk.VolPercentile(self.p.breakers.vol_history))
        return idx

    # ---- market data, fills -------------------------------------------------------------

    def on_tick(
        self,
        symbol: str,
        bid: float,
        ask: float,
        bid_size: float,
        ask_size: float,
        volume: float | None,
        ts_ns: int,
        state: TradingState,
        quality: str = "",
    ) -> ControlCommand | None:
        """Book a tick; a breaker command when one trips or lifts. Exit orders and
        breaker events go to ``pending``."""
        i = self._index(symbol)
        q = self.quotes[i]
        q.bid, q.ask, q.ts_ns = bid, ask, max(q.ts_ns, ts_ns)
        q.quality = quality
        board = self.board
        board.failures = 0  # a good input ends a run of failed ones
        if ts_ns > board.newest_tick_ns:
            board.newest_tick_ns = ts_ns
        depth = bid_size * bid + ask_size * ask
        q.depth_usd = (
            depth if q.depth_usd == 0 else q.depth_usd + _EWMA_DEPTH * (depth - q.depth_usd)
        )
        mid = q.mid
        if volume:
            q.volume_acc_usd += volume * mid
        self.portfolio.marks[symbol] = mid
        if self.counterfactuals.pending:
            self.counterfactuals.mark(symbol, ts_ns, mid)
        if ts_ns > self.now_ns:
            self.now_ns = ts_ns
        # A covariance sample closes once every mark of its event time is in (the first
        # mark of a later time, or a flush before a decision): EwmaCovariance.mark. The
        # first tick counts as one too (the breakers take the day's start equity there).
        first = not self.cov.mark_ns
        if self.cov.mark(i, mid, ts_ns) or first:
            dt_s = self.cov.period_s
            for k, qq in enumerate(self.quotes):
                if dt_s > 0:
                    rate = qq.volume_acc_usd / dt_s
                    qq.volume_usd_per_s = (
                        rate
                        if qq.volume_usd_per_s == 0
                        else (qq.volume_usd_per_s + _EWMA_DEPTH * (rate - qq.volume_usd_per_s))
                    )
                qq.volume_acc_usd = 0.0
                if self.cov.samples:
                    self.vol_hist[k].add(self.cov.daily_vol(k))
            return self._after_tick(i, state, True)
        return self._after_tick(i, state, False)

    def _after_tick(self, i: int, state: TradingState, sampled: bool) -> ControlCommand | None:
        """The breakers when due (a sample, a fill since, a trip in force), then name i's
        exit if one is due."""
        cmd = None
        # per tick only while a trip that data can lift is in force (a WARNING lifts with
        # a fill, which sets breakers_due; the rest wait for a sample or a fill)
        if sampled or self.breakers_due or self.board.lifts_on_data():
            cmd = self.check_breakers(state)
        halted = cmd.action == "halt" if cmd is not None else state.halted
        if not halted:
            self._exit(i)
        return cmd

    def on_timer(self, ts_ns: int, state: TradingState) -> ControlCommand | None:
        """The breakers at a timer's event time (the data-latency deadline, a timed trip's
        end): what trips without any data."""
        if ts_ns > self.now_ns:
            self.now_ns = ts_ns
        return self.check_breakers(state)

    def next_timer_ns(self) -> int | None:
        """When the breakers must be looked at even if no data comes."""
        b = self.p.breakers
        return self.board.next_timer_ns(b.max_data_age_s, b.drawdown_reset_s)

    def has_exposure(self) -> bool:
        """A position or a working order: a tick may cause an exit order."""
        return bool(self.portfolio.working) or any(h.qty for h in self.portfolio.holdings.values())

    # ---- exits ---------------------------------------------------------------------------

    def stop_fracs(self, classes: tuple[str, ...]) -> tuple[float, ...]:
        """Each name's stop distance as a fraction (() with exits off): what the open
        risk limit sums against the daily loss stop."""
        e = self.p.exits
        if not e.enabled:
            return ()
        return tuple(
            ex.stop_bps(e.stop_loss_bps.of(cls), e.stop_loss_vol_mult, self.cov.daily_vol(k)) / 1e4
            for k, cls in enumerate(classes)
        )

    def _exit(self, i: int) -> None:
        """Name i's exit (exits.py), the emergency close or the REDUCE_RISK step-down, as
        an order for the position when one is due and none is working."""
        sym = self.symbols[i]
        h = self.portfolio.holdings.get(sym)
        if h is None or h.qty == 0.0 or self.portfolio.working_qty.get(sym, 0.0) != 0.0:
            return
        q = self.quotes[i]
        mark = q.mid
        if mark <= 0.0:
            return
        target_qty, reason = 0.0, ""
        if "emergency" in self.board.trips:
            reason = "exit:emergency_close"
        else:
            e = self.p.exits
            if e.enabled:
                cls = self.statics().asset_class[i]
                vol = self.cov.daily_vol(i)
                opened = self.opened.get(sym)
                hold_s = (
                    ex.max_hold_s(
                        opened.horizon, opened.horizon_s, e.max_hold_horizons, e.max_hold_s
                    )
                    if opened is not None
                    else 0.0
                )
                reason = ex.exit_reason(
                    h.qty,
                    h.avg_price,
                    mark,
                    self.now_ns,
                    opened,
                    ex.stop_bps(e.stop_loss_bps.of(cls), e.stop_loss_vol_mult, vol),
                    ex.stop_bps(e.take_profit_bps.of(cls), e.take_profit_vol_mult, vol),
                    hold_s,
                )
            keep = self.board.step_down.get(sym)
            if not reason and keep is not None and abs(h.qty) > keep * (1 + 1e-9):
                target_qty, reason = math.copysign(keep, h.qty), "exit:drawdown_step_down"
        if not reason:
            return
        delta = target_qty - h.qty
        if abs(delta) * mark < 1e-6:
            return
        key = f"exit:{sym}:{self.now_ns}:{reason}:{h.qty!r}"
        oid = hashlib.sha256(key.encode()).hexdigest()[:24]
        equity = self._equity()
        d = Decision(sym, "order", reason, target_usd=target_qty * mark, ts_ns=self.now_ns)
        d.var_pct = position_var_pct(
            d.target_usd, self.cov.daily_vol(i), self.p.limits.var_z, equity
        )
        d.portfolio_var_pct = self.portfolio_var_pct()
        d.order_id, d.side, d.qty, d.price = oid, "buy" if delta > 0 else "sell", abs(delta), mark
        d.reduce_only = True
        self.portfolio.add_working(oid, sym, delta)
        self.pending.append(d)

    def on_fill(
        self,
        fill_id: str,
        order_id: str,
        symbol: str,
        signed_qty: float,
        price: float,
        fee_usd: float,
        ts_ns: int = 0,
    ) -> bool:
        """Book a fill (False: seen already). Decides nothing: the breakers look at the
        book at the next tick (``breakers_due``), so a fill never causes an output.

        A round trip runs from the fill that opens a position from flat to the one that
        brings it back to flat (or through zero); its PnL after every fill's fee is one
        outcome for the loss streak and the Kelly record (a break-even is neither)."""
        self._index(symbol)
        h0 = self.portfolio.holdings.get(symbol)
        q0 = h0.qty if h0 is not None else 0.0
        new, realized_usd, _ = self.portfolio.on_fill(
            fill_id, order_id, symbol, signed_qty, price, fee_usd
        )
        if not new:
            return False
        if self.p.dual_mode.enabled:
            self._book_fill(order_id, symbol, signed_qty, price, fee_usd)
        self.portfolio.marks.setdefault(symbol, price)
        q1 = self.portfolio.holdings[symbol].qty
        pnl = self.trip_pnl_usd.get(symbol, 0.0) + realized_usd
        at_ns = ts_ns or self.now_ns
        if q0 != 0.0 and (q1 == 0.0 or (q1 > 0) != (q0 > 0)):
            if abs(pnl) > brk.BREAK_EVEN_USD:
                self.kelly.record(pnl)
            self.streak.record(pnl)
            pnl = 0.0
            self.opened.pop(symbol, None)
            self.board.step_down.pop(symbol, None)
        if q1 != 0.0 and symbol not in self.opened:
            horizon = self.order_horizon.get(order_id, "")
            hold_s = horizon_s(horizon, self.p.costs.default_hold_s) if horizon else 0.0
            self.opened[symbol] = ex.Opened(at_ns, horizon, hold_s or self.p.costs.default_hold_s)
        if q1 == 0.0:
            self.trip_pnl_usd.pop(symbol, None)
        else:
            self.trip_pnl_usd[symbol] = pnl
        if order_id not in self.portfolio.working:
            self.order_horizon.pop(order_id, None)
        self.breakers_due = True
        return True

    def _book_fill(
        self, order_id: str, symbol: str, signed_qty: float, price: float, fee_usd: float
    ) -> None:
        """A fill into the book whose order it is; a fill of an order of no book (an exit,
        a breaker's cut, a reduction) reduces the books holding the other side, each in
        proportion to its position, and what is left goes to the book that sent nothing
        (the runner: a position opened from flat without a book cannot happen)."""
        book = self.order_book.get(order_id)
        if book is not None:
            self._dual_fill(book, symbol, signed_qty, price, fee_usd)
            return
        held = [
            (b, h.qty)
            for b in BOOKS
            if (h := self.dual.holdings[b].get(symbol)) is not None and h.qty * signed_qty < 0
        ]
        total = sum(abs(q) for _, q in held)
        left = signed_qty
        for b, q in held:
            part = signed_qty * abs(q) / total
            part = math.copysign(min(abs(part), abs(q)), part)
            self._dual_fill(b, symbol, part, price, fee_usd * part / signed_qty)
            left -= part
        if abs(left) > 1e-12 * max(1.0, abs(signed_qty)):
            self._dual_fill("runner", symbol, left, price, fee_usd * left / signed_qty)

    def _dual_fill(
        self, book: str, symbol: str, signed_qty: float, price: float, fee_usd: float
    ) -> None:
        """One book's fill; a round trip of the book that closes (back to flat or through
        zero) is one outcome for its win-rate governor, which moves the book's meta-label
        threshold (seed 002)."""
        h = self.dual.holdings[book].get(symbol)  # type: ignore[index]
        q0 = h.qty if h is not None else 0.0
        realised = self.dual.on_fill(book, symbol, signed_qty, price, fee_usd)
        q1 = self.dual.holdings[book][symbol].qty  # type: ignore[index]
        key = (book, symbol)
        pnl = self.book_trip_usd.get(key, 0.0) + realised - fee_usd
        if q0 != 0.0 and (q1 == 0.0 or (q1 > 0) != (q0 > 0)):
            if self.p.dual_mode.governor and abs(pnl) > brk.BREAK_EVEN_USD:
                gov = self.governors[book]  # type: ignore[index]
                self.router.meta_thresholds[book] = gov.update(pnl > 0.0)
            pnl = 0.0
        if q1 == 0.0:
            self.book_trip_usd.pop(key, None)
        else:
            self.book_trip_usd[key] = pnl

    def on_rejection(self, order_id: str) -> bool:
        self.order_horizon.pop(order_id, None)
        return self.portfolio.on_rejection(order_id)

    def on_failure(self, n: int = 1) -> None:
        """``n`` inputs failed (dead-lettered, or a batch that failed): the failures
        breaker counts them until a good tick."""
        self.board.failures += n
        self.breakers_due = True

    # ---- breakers ------------------------------------------------------------------------

    def _roll_day(self) -> None:
        self.board.roll(self.now_ns, self.portfolio.equity_usd)

    def position_usd(self, i: int) -> float:
        """Name i's entry of ``positions_usd``."""
        h = self.portfolio.holdings.get(self.symbols[i])
        q = self.quotes[i]
        working = self.portfolio.working_qty.get(self.symbols[i], 0.0)
        return ((h.qty if h else 0.0) + working) * ((q.bid + q.ask) / 2.0)

    def positions_usd(self) -> tuple[float, ...]:
        """Filled plus working quantity of each name at its mid (Portfolio.exposure_qty *
        Quote.mid, inlined: this runs on every signal)."""
        holdings, working = self.portfolio.holdings, self.portfolio.working_qty
        out = []
        for s, q in zip(self.symbols, self.quotes, strict=True):
            h = holdings.get(s)
            out.append(((h.qty if h else 0.0) + working.get(s, 0.0)) * ((q.bid + q.ask) / 2.0))
        return tuple(out)

    def portfolio_var_pct(self) -> float:
        w = self.positions_usd()
        return portfolio_var_pct(w, self.cov.daily(), self.p.limits.var_z, self._equity())

    def _equity(self) -> float:
        return max(self.portfolio.equity_usd(), 1e-9)

    def check_breakers(self, state: TradingState) -> ControlCommand | None:
        """Every breaker at the current event time (breakers.py): trips and lifts go to
        ``pending`` as breaker events; a control command when the state they call for
        differs from ``state``."""
        if not self.now_ns:
            return None
        self.breakers_due = False
        self._roll_day()
        held = {s: h.qty for s, h in self.portfolio.holdings.items() if h.qty}
        self.board.check(
            self.now_ns,
            self.p.breakers,
            self.p.limits.var_limit_pct,
            self.portfolio.equity_usd(),
            self.portfolio_var_pct(),
            self.streak.count,
            held,
        )
        self._board_events()
        return self.board.command(state)

    def _board_events(self) -> None:
        for why in self.board.events:
            self.pending.append(Decision("portfolio", "breaker", why, ts_ns=self.now_ns))
        self.board.events.clear()

    def on_manual_resume(self) -> None:
        """An operator resumed trading (BreakerBoard.manual_resume)."""
        self.board.manual_resume()
        self._board_events()

    def loss_budget_usd(self, equity_usd: float | None = None) -> float:
        """Daily loss stop left today: stop - today's loss (USD, >= 0). ``equity_usd``:
        the portfolio's equity when the caller has it already."""
        if equity_usd is None:
            equity_usd = self.portfolio.equity_usd()
        start = self.board.day_start_equity_usd
        stop = self.p.limits.daily_loss_stop_pct / 100.0 * start
        lost = max(0.0, start - equity_usd)
        return max(0.0, stop - lost)

    def statics(self) -> NameStatics:
        """The per-name config view, rebuilt when the config or the set of names changed."""
        s = self._statics
        if s is None or s.p is not self.p or len(s.asset_class) != len(self.symbols):
            p = self.p
            infos = [p.symbol_info(sym) for sym in self.symbols]
            classes = tuple(info.asset_class for info in infos)
            s = self._statics = NameStatics(
                p,
                classes,
                tuple(p.sector(sym) for sym in self.symbols),
                tuple(self.caps(cls) for cls in classes),
                tuple(p.costs.funding_bps_per_hour.of(cls) for cls in classes),
            )
        return s

    def caps(self, asset_class: str) -> Caps:
        lim, pre = self.p.limits, self.p.pretrade
        return Caps(
            lim.name_cap_pct.of(asset_class),
            lim.leverage.of(asset_class),
            lim.sector_cap_pct,
            lim.gross_cap_pct,
            lim.single_trade_risk_pct,
            lim.var_limit_pct,
            lim.var_z,
            pre.max_order_usd,
        )

    # ---- the decision --------------------------------------------------------------------

    def on_signal(self, sig: Signal, state: TradingState) -> Decision | None:
        """The decision for one signal; None for a shadow signal (not ours to act on).
        A new position a gate refused is a counterfactual (seed 002): what it would have
        made is measured at the marks that follow (``counterfactuals``)."""
        self._full_usd = 0.0
        d = self._on_signal(sig, state)
        if (
            d is not None
            and d.action == "reject"
            and self._full_usd > 0.0
            and d.reason.split(":", 1)[0] in COUNTERFACTUAL_GATES
            and sig.mid is not None
        ):
            gate = d.reason.split(":", 2)
            name = ":".join(gate[:2]) if gate[0] in ("confidence", "dual") else gate[0]
            self.counterfactuals.record_blocked(
                name, sig.ts_ns, sig.symbol, 1 if d.edge_bps >= 0 else -1, self._full_usd, sig.mid
            )
        return d

    def _on_signal(self, sig: Signal, state: TradingState) -> Decision | None:
        if sig.shadow:
            return None
        i = self._index(sig.symbol)
        self.books[i].add(sig)
        self.cov.flush(sig.ts_ns)  # the ticks of sig.ts_ns are in: close a due sample
        p = self.p
        # Event time: how far the signal is behind the newest data handled (0 when the
        # inputs come in event-time order; more for an entry that came late).
        lag_ms = (self.now_ns - sig.ts_ns) / 1e6
        self.now_ns = max(self.now_ns, sig.ts_ns)
        if sig.regime == "PANIC" and p.breakers.emergency_on_panic:
            self.board.panic(self.now_ns, sig.symbol)
            self._board_events()
            self.command = self.board.command(state)
            if self.command is not None:
                state = state_after(self.command)
        edge, unc, _ = blend_book(self.books[i], sig.ts_ns, p.blend)
        d = Decision(sig.symbol, "reject", "", edge, unc, ts_ns=sig.ts_ns)
        # The book's VaR as it stands (sizing replaces it with the VaR after the order):
        # a reject or a halt reports it too, so the gauge holds the last computed value.
        w = self.positions_usd()
        cov = self.cov.daily()
        equity_usd = self.portfolio.equity_usd()
        equity = max(equity_usd, 1e-9)  # as _equity()
        d.portfolio_var_pct = portfolio_var_pct(w, cov, p.limits.var_z, equity)
        if state.halted:
            d.action, d.reason = "halt", f"trading_halted:{state.reason}"
            return d
        q = self.quotes[i]
        bad = quote_check(
            q.ts_ns,
            q.mid,
            sig.mid,
            sig.ts_ns,
            p.pretrade.max_quote_age_ms,
            p.pretrade.price_band_bps,
        )
        if bad:
            d.reason = bad
            return d
        # No new positions (reductions pass) on a late signal or a flagged quote.
        gate = ""
        if lag_ms > p.pretrade.max_signal_lag_ms:
            gate = "stale_data"
        elif q.quality:
            flags = [f for f in q.quality.split(",") if f in GATING_FLAGS]
            if flags:
                gate = "data_quality:" + "+".join(flags)
        conf_mult = 1.0
        levels = p.confidence_levels
        if levels.enabled:
            level = level_of((1.0 + sig.confidence) / 2.0)
            d.confidence_level = level.name
            conf_mult = getattr(levels, level.name.lower())
            if conf_mult <= 0.0 and not gate:
                gate = reason_code(level)  # no new positions; reductions pass
        reducing = state.state == "REDUCING" or bool(gate)
        self._roll_day()
        mark = q.mid
        names = self.statics()
        x = w[i]
        sigma = math.sqrt(max(0.0, cov[i][i]))

        # costs and the gate
        defence = self.vol_hist[i].above(p.breakers.vol_percentile, p.breakers.vol_min_samples)
        size_mult = conf_mult * self.streak.size_mult(
            p.breakers.loss_streak, p.breakers.loss_streak_size_mult
        )
        if defence:
            size_mult *= p.breakers.defence_size_mult
        c = p.costs
        f_kelly = self.kelly.f(
            p.sizing.kelly_prior_win_rate,
            p.sizing.kelly_prior_win_loss,
            p.sizing.kelly_prior_trades,
        )
        full_usd = self._full_usd = full_size_usd(
            equity, p.sizing.target_vol_pct, sigma, p.sizing.kelly_fraction, f_kelly
        )
        # The day's volume (seed 001 §6): the traded-USD rate over a day (0 until a
        # volume has been seen: the impact is then on the depth of one side, seed 003 §4)
        daily_volume_usd = q.volume_usd_per_s * 86_400.0
        sigma_daily_bps, side_depth_usd = sigma * 1e4, q.depth_usd / 2.0
        fee_in_bps, fee_out_bps = round_trip_fees_bps(
            c.fees_for(names.asset_class[i]), full_usd, "buy" if edge >= 0 else "sell", c.liquidity
        )
        d.cost_bps = cost = total_cost_bps(
            q.spread_bps,
            full_usd,
            daily_volume_usd,
            sigma_daily_bps,
            c.impact_coeff,
            side_depth_usd,
            c.impact_fallback_bps,
            fee_in_bps,
            fee_out_bps,
            c.funding_rate_bps_per_8h.of(names.asset_class[i]),
            horizon_s(sig.horizon, c.default_hold_s),
            c.latency_ms,
            c.latency_bps_per_10ms,
            c.round_trip,
        )
        margin = c.safety_margin_bps + (p.breakers.defence_extra_margin_bps if defence else 0.0)
        net = net_edge_bps(edge, cost, margin)
        direction = 1.0 if edge >= 0 else -1.0
        why = "edge"
        if net <= 0.0:
            if x != 0.0 and edge * x < 0 and abs(edge) > c.exit_edge_bps:
                why = "exit"
            else:
                d.reason = gate or "edge_below_costs"
                return d
        cg = p.conformal_gate
        if cg.enabled and why == "edge" and not gate and x * direction >= 0:
            # seed 002's runner gate, on a new or larger position only
            low, high = sig.edge_low_bps, sig.edge_high_bps
            pess = (
                pessimistic_edge_bps(sig.edge_bps, low, high)
                if low is not None and high is not None
                else -math.inf
            )
            if pess <= cost + cg.cost_buffer_bps:
                gate = "conformal:pessimistic_edge"
                reducing = True

        dual_book = ""
        dm = p.dual_mode
        if dm.enabled and why == "edge" and not reducing:
            # seed 002: the mode selector, then the hybrid gate router picks the book
            p_dir = (1.0 + sig.confidence) / 2.0
            route = select_mode(sig.leading_model, sig.regime or "TREND", p_dir, dm)
            low, high = sig.edge_low_bps, sig.edge_high_bps
            worst = (
                pessimistic_edge_bps(edge, low, high)
                if low is not None and high is not None
                else None
            )
            pick = self.router.route(edge, cost, worst, p_dir, route, names.asset_class[i])
            if pick.book is None:
                d.reason = f"dual:{pick.reason}"
                return d
            dual_book = pick.book
            self.dual.equity_usd = equity
            self.dual.mark(sig.symbol, q.mid)

        # size within every limit
        book = Book(
            w,
            names.asset_class,
            names.sector,
            cov,
            equity,
            self.loss_budget_usd(equity_usd),
            self.stop_fracs(names.asset_class),
        )
        inputs = SizeInputs(
            direction,
            net if why == "edge" else 0.0,
            p.sizing.target_vol_pct,
            p.sizing.kelly_fraction,
            f_kelly,
            p.sizing.full_size_edge_bps,
            size_mult,
        )
        target, binding = size(i, inputs, book, names.caps[i], reducing)
        if why == "edge" and x * direction > 0 and abs(target) < abs(x) and not binding:
            target = x  # never shrink a same-side position just because the edge weakened
        if dual_book:  # the book's own heat cap and the reserve (books.py)
            own = self.dual.value_usd(dual_book, sig.symbol)
            target = x + self.dual.clip(dual_book, sig.symbol, own + target - x) - own
        delta = target - x
        d.target_usd = target
        d.book = dual_book
        d.var_pct = position_var_pct(target, sigma, p.limits.var_z, equity)
        w_after = list(w)
        w_after[i] = target
        d.portfolio_var_pct = portfolio_var_pct(w_after, cov, p.limits.var_z, equity)
        if abs(delta) < max(p.sizing.min_order_usd, 1e-9):
            d.reason = gate or binding or "below_min_order"
            return d
        if target * x > 0 and abs(delta) < p.sizing.rebalance_band_pct / 100.0 * abs(x):
            d.reason = "within_band"
            return d
        rate = self.rate.check(
            sig.symbol, sig.ts_ns, p.pretrade.max_orders_per_s, p.pretrade.symbol_cooldown_ms
        )
        if rate:
            d.reason = rate
            return d
        # seed 001 §1: the order's slippage estimate; exits are never refused on it (a
        # refusal must not trap a position)
        est = slippage_estimate(
            q.spread_bps, delta, daily_volume_usd, sigma_daily_bps, side_depth_usd, c
        )
        if not (abs(target) <= abs(x) and target * x >= 0) and slippage_too_high(est, c):
            d.reason = "slippage_too_high"
            return d
        d.action = "order"
        d.reason = why + (f":{binding}" if binding else "")
        d.order_id = order_id_for(sig)
        if dual_book:
            if len(self.order_book) >= MAX_ORDER_BOOKS:
                self.order_book.pop(next(iter(self.order_book)))
            self.order_book[d.order_id] = dual_book
        d.side = "buy" if delta > 0 else "sell"
        d.qty = abs(delta) / mark
        d.price = mark
        # reduce-only when it reduces what is filled (execution checks it against its
        # filled position: a sell against a buy still working would be refused there)
        h = self.portfolio.holdings.get(sig.symbol)
        filled = h.qty if h is not None else 0.0
        d.reduce_only = abs(target) <= abs(x) and target * x >= 0 and filled * delta < 0
        signed = d.qty if delta > 0 else -d.qty
        self.portfolio.add_working(d.order_id, sig.symbol, signed)
        self.order_horizon[d.order_id] = sig.horizon
        self.rate.record(sig.symbol, sig.ts_ns)
        return d
