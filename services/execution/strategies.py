"""Order types and execution strategies: which one, and what one "act" of it fills.

Seed 003 §8 as quoted in issue 7: market, limit, post-only (fills only when the market
trades through it), TWAP, POV, iceberg; a market order from risk is worked by the
rules in ``StrategyRules`` (see ``choose``). An explicit non-market order type is
honoured as sent.

A working order acts at market times: its arrival (decision time + latency) and each
TWAP slice time are "at" acts, priced on the quote in force at that time; partial
fills continue on "tick" acts, one per later tick, priced on that tick. ``act`` is
pure: it prices one act and never looks at any quote other than the one given.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from services.execution import fill_model as fm
from services.execution.config import ExecutionConfig, StrategyRules
from shared.messages import Order, Side, Tick

Strategy = Literal["market", "limit", "post_only", "twap", "pov", "iceberg", "flatten"]
Mode = Literal["at", "tick"]
QTY_EPS = 1e-12


def choose(
    order: Order,
    quote: Tick | None,
    avg_volume: float,
    same_side_recent: int,
    rules: StrategyRules,
) -> tuple[Strategy, str]:
    """(strategy, why). Explicit order types and reduce-only orders are kept as sent;
    a market order is worked by the first rule that applies:
    notional = qty * decision_price > iceberg_above_usd            -> iceberg
    qty > pov_above_volume_pct / 100 * average tick volume          -> pov
    same_side_recent >= twap_persistent_orders                      -> twap
    spread_bps = (ask - bid) / mid * 1e4 > post_only_spread_bps     -> post_only
    otherwise                                                       -> market
    """
    if order.order_type != "market":
        return order.order_type, "order_type"
    if order.reduce_only or not rules.enabled:
        return "market", "reduce_only" if order.reduce_only else "rules_disabled"
    if order.qty * order.decision_price > rules.iceberg_above_usd:
        return "iceberg", "notional_above_iceberg_usd"
    if avg_volume > 0 and order.qty > rules.pov_above_volume_pct / 100.0 * avg_volume:
        return "pov", "qty_above_pov_volume_pct"
    if same_side_recent >= rules.twap_persistent_orders:
        return "twap", "persistent_signal"
    if quote is not None and 2 * fm.half_spread_bps(quote) > rules.post_only_spread_bps:
        return "post_only", "spread_above_post_only_bps"
    return "market", "default"


@dataclass(slots=True)
class WorkingOrder:
    """An order being worked; persisted as JSON so it survives a restart."""

    order_id: str
    symbol: str
    side: Side
    qty: float
    strategy: Strategy
    decision_price: float
    decision_ts_ns: int
    arrival_ns: int
    trace_ts_ns: int
    expires_ns: int
    due_ns: int
    mode: Mode = "at"
    limit_price: float | None = None
    explicit_limit: bool = False
    resting: bool = False  # a limit-type order that did not cross: on the book, maker only
    filled_qty: float = 0.0
    fill_seq: int = 0
    acts: int = 0
    twap_slice: int = 0
    # Set at arrival from the day's volume (seed 001 §6): at most this much fills in all
    # (0 = no cap: the volume was not known), and the pre-trade cost estimate, bps.
    cap_qty: float = 0.0
    predicted_bps: float = 0.0
    received_wall_ns: int = 0  # unused; kept so working orders saved before still load

    @property
    def remaining(self) -> float:
        return max(self.qty - self.filled_qty, 0.0)

    @property
    def done(self) -> bool:
        return self.remaining <= QTY_EPS * max(1.0, self.qty)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _WORKING_FIELDS}


_WORKING_FIELDS = tuple(f.name for f in fields(WorkingOrder))


def new_working(order: Order, strategy: Strategy, cfg: ExecutionConfig) -> WorkingOrder:
    arrival = order.ts_ns + max(1, int(cfg.latency_ms * 1e6))
    schedule_ns = 0
    if strategy == "twap":
        rules = cfg.strategies
        schedule_ns = int((rules.twap_slices - 1) * rules.twap_interval_ms * 1e6)
    return WorkingOrder(
        order_id=order.order_id,
        symbol=order.symbol,
        side=order.side,
        qty=order.qty,
        strategy=strategy,
        decision_price=order.decision_price,
        decision_ts_ns=order.ts_ns,
        arrival_ns=arrival,
        trace_ts_ns=order.trace_ts_ns,
        expires_ns=arrival + schedule_ns + int(cfg.order_timeout_ms * 1e6),
        due_ns=arrival,
        limit_price=order.limit_price,
        explicit_limit=order.limit_price is not None,
    )


def act(w: WorkingOrder, q: Tick, cfg: ExecutionConfig, m: fm.Market) -> fm.PricedFill | str | None:
    """Price one act of ``w`` on quote ``q``: a fill, a rejection reason, or None (no fill
    this time). Sets the limit of converted post-only/iceberg orders on the first act."""
    first = w.acts == 0
    w.acts += 1
    cap = fm.participation_cap(q, w.side, cfg.max_participation_pct)
    if w.cap_qty > 0:  # the order's share of the day's volume (seed 001 §6)
        cap = min(cap, max(w.cap_qty - w.filled_qty, 0.0))
    want = w.remaining
    if w.strategy == "twap":
        n = cfg.strategies.twap_slices
        want = w.qty * min(w.twap_slice + 1, n) / n - w.filled_qty
    elif w.strategy == "pov":
        traded = q.volume if q.volume is not None else fm.depth(q, w.side)
        want = min(want, cfg.strategies.pov_rate_pct / 100.0 * traded)
    elif w.strategy in ("limit", "post_only", "iceberg"):
        return _act_limit(w, q, cfg, m, first, cap)
    qty = min(want, cap)
    if w.strategy == "flatten":
        qty = want  # the kill switch closes everything now, impact priced in
    return _taker(w, q, qty, m)


def _act_limit(
    w: WorkingOrder, q: Tick, cfg: ExecutionConfig, m: fm.Market, first: bool, cap: float
) -> fm.PricedFill | str | None:
    d = fm.direction(w.side)
    if w.limit_price is None:
        if w.strategy == "post_only":  # join the near touch: never crosses
            w.limit_price = q.bid if w.side == "buy" else q.ask
        elif w.strategy == "iceberg":
            far = q.ask if w.side == "buy" else q.bid
            w.limit_price = far * (1.0 + d * cfg.strategies.iceberg_limit_bps / 1e4)
        else:
            return "limit_without_price"
    limit = w.limit_price
    want = w.remaining
    if w.strategy == "iceberg":
        want = min(want, cfg.strategies.iceberg_display_usd / limit)
    crosses = fm.marketable(q, w.side, limit)
    if w.strategy == "post_only" and first and crosses:
        return "post_only_would_cross"
    if w.strategy != "post_only" and crosses and not w.resting:
        # Still taking (it crossed on arrival and has not rested since): sweep within the limit.
        room = fm.max_qty_within_limit(q, w.side, limit, m)
        return _taker(w, q, min(want, cap, room), m)
    if not crosses:
        w.resting = True  # on the book now: it fills as a maker from here on
        return None
    if not first and w.resting and fm.traded_through(q, w.side, limit):
        qty = min(want, cap)
        if qty <= QTY_EPS:
            return None
        return fm.PricedFill(qty, limit, "maker", 0.0, fm.half_spread_bps(q), q)
    return None


def _taker(w: WorkingOrder, q: Tick, qty: float, m: fm.Market) -> fm.PricedFill | None:
    if qty <= QTY_EPS or fm.depth(q, w.side) <= 0:
        return None
    price, imp = fm.taker_price(q, w.side, qty, m)
    return fm.PricedFill(qty, price, "taker", imp, fm.half_spread_bps(q), q)


def reschedule(w: WorkingOrder, act_ns: int, cfg: ExecutionConfig) -> None:
    """After an act at ``act_ns``: the next TWAP slice is an "at" act at
    arrival + i * interval; everything else continues on the next tick after it."""
    n = cfg.strategies.twap_slices
    if w.strategy == "twap" and w.twap_slice + 1 < n:
        w.twap_slice += 1
        w.due_ns = w.arrival_ns + int(w.twap_slice * cfg.strategies.twap_interval_ms * 1e6)
        w.mode = "at"
        return
    if w.strategy == "twap":
        w.twap_slice = n  # schedule over: the remainder is worked tick by tick
    w.due_ns = act_ns + 1
    w.mode = "tick"
