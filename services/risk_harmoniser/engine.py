"""The risk decision, pure: ticks, fills, rejections and signals in; decisions (with or
without an order) and breaker commands out. No I/O, so the same engine runs live,
in replay, in the benchmark and under hypothesis.

A signal's decision, in order (the first failing step is the reason code):
1. HALTED -> ``halt``.
2. quote checks (no_quote, stale_quote, price_band); a signal more than
   max_signal_lag_ms of event time behind the newest data handled (it came late)
   -> no new positions (``stale_data``, reduce only).
3. blend -> edge, uncertainty; costs -> net edge = |edge| - costs - margin.
4. net edge > 0: size toward sign(edge) (never shrink a same-side position on a
   weaker edge); edge against the position by > exit_edge_bps: target 0; else
   ``edge_below_costs``.
5. limits (incl. portfolio VaR, REDUCING) clip the target; tiny or in-band changes
   -> ``below_min_order`` / ``within_band``; order rate -> ``order_rate`` /
   ``symbol_cooldown``; else an order for target - current (filled + working).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from services.risk_harmoniser import breakers as brk
from services.risk_harmoniser.blend import SignalBook, blend_book
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
from services.risk_harmoniser.portfolio import Portfolio
from services.risk_harmoniser.sizing import KellyTracker, SizeInputs, full_size_usd, size
from services.risk_harmoniser.var import (
    DAY_S,
    EwmaCovariance,
    portfolio_var_pct,
    position_var_pct,
)
from shared.control import ControlCommand, TradingState, level_command
from shared.messages import SIGNALS, Signal

_EWMA_DEPTH = 0.1  # weight of the newest touch depth / volume rate


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
        self.day = 0
        self.day_start_equity_usd = p.equity_usd
        self.now_ns = 0
        self.breakers_due = False  # a fill moved the book: check the breakers at the next tick
        self._statics: NameStatics | None = None

    def configure(self, p: RiskParams) -> None:
        """A new config: limits apply at once; learned state (book, covariance) stays,
        the covariance recomputed from its kept returns under new ``var.*`` keys."""
        old = self.p
        self.p = p
        self.portfolio.starting_equity_usd = p.equity_usd
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
    ) -> ControlCommand | None:
        i = self._index(symbol)
        q = self.quotes[i]
        q.bid, q.ask, q.ts_ns = bid, ask, max(q.ts_ns, ts_ns)
        depth = bid_size * bid + ask_size * ask
        q.depth_usd = (
            depth if q.depth_usd == 0 else q.depth_usd + _EWMA_DEPTH * (depth - q.depth_usd)
        )
        mid = q.mid
        if volume:
            q.volume_acc_usd += volume * mid
        self.portfolio.marks[symbol] = mid
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
            return self.check_breakers(state)
        if self.breakers_due or (state.halted and state.until_ns):
            return self.check_breakers(state)
        return None

    def on_fill(
        self,
        fill_id: str,
        order_id: str,
        symbol: str,
        signed_qty: float,
        price: float,
        fee_usd: float,
    ) -> bool:
        """Book a fill (False: seen already). Decides nothing: the breakers look at the
        book at the next tick (``breakers_due``), so a fill never causes an output."""
        self._index(symbol)
        new, realized_usd, closed = self.portfolio.on_fill(
            fill_id, order_id, symbol, signed_qty, price, fee_usd
        )
        if not new:
            return False
        self.portfolio.marks.setdefault(symbol, price)
        if closed:
            self.kelly.record(realized_usd)
            self.streak.record(realized_usd)
        self.breakers_due = True
        return True

    def on_rejection(self, order_id: str) -> bool:
        return self.portfolio.on_rejection(order_id)

    # ---- breakers ------------------------------------------------------------------------

    def _roll_day(self) -> None:
        day = brk.utc_day(self.now_ns)
        if day != self.day:
            self.day = day
            self.day_start_equity_usd = self.portfolio.equity_usd()

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
        """A control command when a breaker trips or a timed halt expires, else None."""
        if not self.now_ns:
            return None
        self.breakers_due = False
        self._roll_day()
        b = self.p.breakers
        if state.halted:
            if state.until_ns and self.now_ns >= state.until_ns:
                return ControlCommand(action="resume", reason="halt expired", source="risk")
            return None
        dd = brk.drawdown_pct(self.day_start_equity_usd, self.portfolio.equity_usd())
        if dd >= b.daily_drawdown_pct:
            until = brk.next_utc_midnight_ns(self.now_ns)
            return level_command("HALT_ALL_TRADING", f"breaker:daily_drawdown {dd:.2f}%", until)
        var = self.portfolio_var_pct()
        if var > b.halt_var_pct:
            return level_command("HALT_ALL_TRADING", f"breaker:portfolio_var {var:.2f}%")
        return None

    def loss_budget_usd(self, equity_usd: float | None = None) -> float:
        """Daily loss stop left today: stop - today's loss (USD, >= 0). ``equity_usd``:
        the portfolio's equity when the caller has it already."""
        if equity_usd is None:
            equity_usd = self.portfolio.equity_usd()
        stop = self.p.limits.daily_loss_stop_pct / 100.0 * self.day_start_equity_usd
        lost = max(0.0, self.day_start_equity_usd - equity_usd)
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
        """The decision for one signal; None for a shadow signal (not ours to act on)."""
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
        edge, unc, _ = blend_book(self.books[i], sig.ts_ns, p.blend)
        d = Decision(sig.symbol, "reject", "", edge, unc)
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
        stale = lag_ms > p.pretrade.max_signal_lag_ms
        reducing = state.state == "REDUCING" or stale
        self._roll_day()
        mark = q.mid
        names = self.statics()
        equity_usd = self.portfolio.equity_usd()
        equity = max(equity_usd, 1e-9)  # as _equity()
        x = self.position_usd(i)  # the whole book only past the cost gate
        cov = self.cov.daily()
        sigma = math.sqrt(max(0.0, cov[i][i]))

        # costs and the gate
        defence = self.vol_hist[i].above(p.breakers.vol_percentile, p.breakers.vol_min_samples)
        size_mult = self.streak.size_mult(p.breakers.loss_streak, p.breakers.loss_streak_size_mult)
        if defence:
            size_mult *= p.breakers.defence_size_mult
        c = p.costs
        f_kelly = self.kelly.f(
            p.sizing.kelly_prior_win_rate,
            p.sizing.kelly_prior_win_loss,
            p.sizing.kelly_prior_trades,
        )
        full_usd = full_size_usd(
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
                d.reason = "stale_data" if stale else "edge_below_costs"
                return d

        # size within every limit
        w = self.positions_usd()
        book = Book(
            w,
            names.asset_class,
            names.sector,
            cov,
            equity,
            self.loss_budget_usd(equity_usd),
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
        delta = target - x
        d.target_usd = target
        d.var_pct = position_var_pct(target, sigma, p.limits.var_z, equity)
        w_after = list(w)
        w_after[i] = target
        d.portfolio_var_pct = portfolio_var_pct(w_after, cov, p.limits.var_z, equity)
        if abs(delta) < max(p.sizing.min_order_usd, 1e-9):
            d.reason = ("stale_data" if stale else binding) or "below_min_order"
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
        d.side = "buy" if delta > 0 else "sell"
        d.qty = abs(delta) / mark
        d.price = mark
        d.reduce_only = abs(target) <= abs(x) and target * x >= 0
        signed = d.qty if delta > 0 else -d.qty
        self.portfolio.add_working(d.order_id, sig.symbol, signed)
        self.rate.record(sig.symbol, sig.ts_ns)
        return d
