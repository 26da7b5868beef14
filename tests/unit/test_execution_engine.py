"""The paper broker's core against scripted quote sequences (no Redis)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution.config import ExecutionConfig, StrategyRules
from services.execution.engine import HALT_REASON, ExecutionEngine, Outputs, fill_id
from shared.control import TradingState
from shared.merge import TIMER, EventMerge
from shared.messages import MD_TICKS, ORDERS, Order, Tick

MS = 1_000_000
T0 = 1_700_000_000_000 * MS  # a fixed market time (ns)
ACTIVE = TradingState()
HALTED = TradingState("HALTED", "test", 1)


def cfg(**over: Any) -> ExecutionConfig:
    rules = over.pop("strategies", {})
    base: dict[str, Any] = {
        "latency_ms": 2.0,
        "impact_coeff": 0.0,
        "impact_fallback_bps": 0.0,
        "taker_fee_bps": 2.0,
        "maker_fee_bps": -0.5,
        "max_participation_pct": 100.0,
        "strategies": StrategyRules(enabled=False, **rules)
        if not rules
        else StrategyRules(**rules),
    }
    base.update(over)
    return ExecutionConfig(**base)


def tick(ms: float, bid: float = 100.0, ask: float = 100.1, size: float = 10.0, **kw: Any) -> Tick:
    fields: dict[str, Any] = {"bid_size": size, "ask_size": size, "volume": 10.0, "venue": "paper"}
    fields.update(kw)
    return Tick(symbol="X", ts_ns=T0 + int(ms * MS), bid=bid, ask=ask, **fields)


def order(ms: float, qty: float = 1.0, side: str = "buy", oid: str = "o1", **kw: Any) -> Order:
    fields: dict[str, Any] = {
        "order_id": oid,
        "symbol": "X",
        "ts_ns": T0 + int(ms * MS),
        "side": side,
        "qty": qty,
        "position_size_usd": qty * 100,
        "edge_blended_bps": 5.0,
        "var_pct": 0.1,
        "decision_price": 100.05,
    }
    fields.update(kw)
    return Order(**fields)


class FixedStats:
    """Stands in for ``impact.DailyStats``: a known day's volume and volatility."""

    def __init__(self, daily_volume: float, sigma_daily_bps: float) -> None:
        self.daily_volume, self.sigma_daily_bps = daily_volume, sigma_daily_bps

    def add(self, ts_ns: int, mid: float, volume: float) -> None:
        pass


class Script:
    """Feeds an engine a scripted sequence and collects everything it outputs.

    In event-time order under a watermark, as the runtime does (shared/merge.py): each
    item fed says the script is complete through its ``ts_ns``, so an order's arrival
    (a timer, ``next_timer_ns``) fires once event time reaches it, after the ticks
    stamped at that time and before any later one; ``until`` lets event time pass with
    no tick. An item fed behind the watermark is late and handled at once."""

    def __init__(self, config: ExecutionConfig | None = None) -> None:
        self.engine = ExecutionEngine(config or cfg())
        self.out = Outputs()
        self.ticks: list[Tick] = []
        self.merge = EventMerge((MD_TICKS, ORDERS), {MD_TICKS: "script", ORDERS: "script"})

    def feed(self, *items: Tick | Order, trading: TradingState = ACTIVE) -> Script:
        for item in items:
            if isinstance(item, Tick):
                self.ticks.append(item)
            self.merge.push(MD_TICKS if isinstance(item, Tick) else ORDERS, item.ts_ns, item)
            self.merge.advance("script", item.ts_ns)
            self._drain(trading)
        return self

    def until(self, ms: float, trading: TradingState = ACTIVE) -> Script:
        """Event time passes ``T0 + ms`` with nothing fed (the watermark moves on)."""
        self.merge.advance("script", T0 + int(ms * MS))
        self._drain(trading)
        return self

    def _drain(self, trading: TradingState) -> None:
        for ts, item in self.merge.drain(self.engine.next_timer_ns):
            if item is TIMER:
                self.engine.on_timer(ts, trading, self.out)
            elif isinstance(item, Tick):
                self.engine.on_tick(item, trading, self.out)
            else:
                self.engine.on_order(item, trading, self.out)

    @property
    def fills(self) -> list[Any]:
        return self.out.fills

    @property
    def reasons(self) -> list[str]:
        return [r.reason for r in self.out.rejections]


# ---- the quote in force -------------------------------------------------------------------


def test_fill_uses_the_quote_in_force_at_arrival_not_a_later_one() -> None:
    s = Script().feed(tick(0, 100.0, 100.1), order(5))  # arrives at 7 ms
    # Event time: the order acts at its arrival as a timer, which fires only once event
    # time reaches 7 ms (until then a quote stamped <= 7 ms may still come).
    assert s.fills == []
    s.feed(tick(8, 150.0, 150.1))  # a later, very different quote: the timer fires first
    [f] = s.fills
    assert f.ts_ns == T0 + 7 * MS
    assert f.quote_ts_ns == T0
    assert f.price == pytest.approx(100.1)  # the ask of the quote in force, not 150.1


def test_a_quote_stamped_exactly_at_arrival_is_the_one_in_force() -> None:
    s = Script().feed(tick(0, 100.0, 100.1), order(5), tick(7, 101.0, 101.1))
    [f] = s.fills
    assert (f.quote_ts_ns, f.price) == (T0 + 7 * MS, pytest.approx(101.1))


def test_an_order_late_for_its_arrival_uses_the_history() -> None:
    # The order reaches execution after ticks past its arrival (in event time: a late
    # entry, e.g. from an upstream stepped over after max_hold_ms, handled at once):
    # the quote then in force, from the history.
    s = Script().feed(tick(0, 100.0, 100.1), tick(5, 99.0, 99.1), tick(9, 98.0, 98.1), order(4))
    [f] = s.fills
    assert f.quote_ts_ns == T0 + 5 * MS and f.price == pytest.approx(99.1)


def test_timer_uses_the_newest_quote_once_no_later_tick_came() -> None:
    # Event time (was: quote_wait_ms of estimated market time on the wall clock): the
    # arrival timer fires when the watermark reaches the arrival, with no later tick;
    # every tick up to then has been handled, so the newest quote is the one in force.
    s = Script().feed(tick(0), order(5))
    s.until(6.999)  # not yet at the arrival (7 ms): keep waiting
    assert s.fills == [] and "o1" in s.engine.working
    s.until(7)
    [f] = s.fills
    assert f.ts_ns == T0 + 7 * MS and f.quote_ts_ns == T0


def test_stale_and_missing_quotes_are_rejected() -> None:
    s = Script(cfg(max_quote_age_ms=1000)).feed(tick(0), order(2000, oid="late"), tick(3000))
    assert s.reasons == ["stale_quote"] and s.fills == []
    s2 = Script().feed(order(0), tick(10))
    assert s2.reasons == ["no_quote_at_arrival"]


# ---- the fill model, by hand ------------------------------------------------------------


def known_market(c: ExecutionConfig, daily_volume: float, sigma_daily_bps: float) -> Script:
    s = Script(c)
    s.engine.stats["X"] = FixedStats(daily_volume, sigma_daily_bps)  # type: ignore[assignment]
    return s


def test_market_fill_price_fee_and_slippage_by_hand() -> None:
    # mid 100, spread 0.10 -> half-spread 5 bps; 1 of a day's 400 at sigma 200 bps, Y 0.15:
    # impact 0.15 * 200 * sqrt(1/400) = 1.5 bps; price = 100 * (1 + 6.5/1e4) = 100.065;
    # fee = 100.065 * 2/1e4 = 0.020013 USD; slippage against 100.00 = 6.5 bps
    s = known_market(cfg(impact_coeff=0.15), 400.0, 200.0)
    s.feed(tick(0, 99.95, 100.05, size=4.0), order(1, decision_price=100.0), tick(10))
    [f] = s.fills
    assert f.price == pytest.approx(100.065, abs=1e-9)
    assert f.fee == pytest.approx(0.020013, abs=1e-12) and f.fee_bps == pytest.approx(2.0)
    assert f.slippage_bps == pytest.approx(6.5, abs=1e-6)
    assert f.half_spread_bps == pytest.approx(5.0) and f.impact_bps == pytest.approx(1.5)
    assert f.liquidity == "taker" and f.fill_id == fill_id("o1", 1)
    # the pre-trade estimate beside it: 5 + 1.5 + latency (2 ms / 10) * 0.1 = 6.52 bps
    [check] = s.out.costs
    assert check.predicted_bps == pytest.approx(6.52) and check.realised_bps == pytest.approx(6.5)
    assert [c.fill_type for c in s.out.completed] == ["full"]


def test_sell_receives_the_bid_less_impact() -> None:
    s = known_market(cfg(impact_coeff=0.15), 400.0, 200.0)
    s.feed(tick(0, 99.95, 100.05, size=4.0), order(1, side="sell", decision_price=100.0), tick(10))
    assert s.fills[0].price == pytest.approx(100 * (1 - 6.5 / 1e4), abs=1e-9)
    assert s.fills[0].slippage_bps == pytest.approx(6.5, abs=1e-6)


def test_an_order_fills_at_most_5_pct_of_the_days_volume() -> None:
    # seed 001 §6: a day's volume of 400 -> at most 20 of an order of 30; the rest is
    # cancelled (participation_cap) and the order's fill type is partial
    s = known_market(cfg(), 400.0, 200.0)
    s.feed(tick(0, size=100.0), order(1, qty=30.0), tick(10, size=100.0), tick(20, size=100.0))
    assert sum(f.qty for f in s.fills) == pytest.approx(20.0)
    [rej] = s.out.rejections
    assert rej.reason == "participation_cap" and rej.qty == pytest.approx(10.0)
    assert rej.filled_qty == pytest.approx(20.0)
    assert [c.fill_type for c in s.out.completed] == ["partial"]


def test_fill_types_none_and_expired() -> None:
    s = Script(cfg(order_timeout_ms=50)).feed(tick(0), order(1, order_type="limit", limit_price=99))
    s.feed(tick(10), tick(100))
    s.feed(order(101, oid="p", order_type="post_only", limit_price=100.2), tick(110))
    assert s.reasons == ["expired", "post_only_would_cross"]
    assert [c.fill_type for c in s.out.completed] == ["expired", "none"]


def test_a_share_schedule_stamp_duty_on_sells_and_the_commission_minimum() -> None:
    # seed 001 §6: commission 2.5 bps (min 5), transfer 0.2, exchange 0.487, stamp duty 10
    # on sells. Buy 100 @ 100.1 (notional 10,010): commission max(2.5025, 5) = 5, transfer
    # and exchange 10,010 * 0.687 / 1e4 = 0.687687 -> 5.687687. Sell 100 @ 100.0 (10,000):
    # 5 + 0.687 + stamp duty 10 = 15.687.
    a_share = {
        "taker_fee_bps": 2.5,
        "maker_fee_bps": 2.5,
        "min_commission_usd": 5.0,
        "sell_tax_bps": 10.0,
        "transfer_fee_bps": 0.2,
        "exchange_fee_bps": 0.487,
    }
    c = cfg(venues={"sse:stocks": a_share})
    sse: dict[str, Any] = {"size": 1e4, "venue": "sse"}
    s = Script(c).feed(tick(0, **sse), order(1, qty=100.0), tick(10, **sse))
    s.feed(order(11, qty=100.0, side="sell", oid="s"), tick(20, **sse))
    buy, sell = s.fills
    assert buy.fee == pytest.approx(5.687687, abs=1e-9)
    assert sell.fee == pytest.approx(15.687, abs=1e-9)
    crypto = Script(cfg(venues={"sse:stocks": a_share}))  # "X" is stocks; a pair is crypto
    assert crypto.engine.cfg.fees_for("sse", "BTC-USD").taker_fee_bps == 2.0  # the default


def test_participation_cap_splits_into_partial_fills_over_later_ticks() -> None:
    s = Script(cfg(max_participation_pct=50.0)).feed(tick(0, size=4.0), order(1, qty=5.0))
    s.feed(tick(10, size=4.0), tick(20, size=4.0), tick(30, size=2.0))
    assert [f.qty for f in s.fills] == pytest.approx([2.0, 2.0, 1.0])
    assert [f.quote_ts_ns - T0 for f in s.fills] == [0, 10 * MS, 20 * MS]
    assert [f.ts_ns - T0 for f in s.fills] == [3 * MS, 10 * MS, 20 * MS]
    assert len({f.fill_id for f in s.fills}) == 3
    assert [f.remaining_qty for f in s.fills] == pytest.approx([3.0, 1.0, 0.0])
    assert s.engine.working == {} and s.out.done["o1"][0] == "filled"


def test_venue_fees_with_a_maker_rebate() -> None:
    c = cfg(venues={"paper": {"taker_fee_bps": 3.0, "maker_fee_bps": -1.0}})
    s = Script(c).feed(tick(0), order(1, order_type="limit", limit_price=99.9), tick(10))
    s.feed(tick(20, 99.7, 99.8))  # trades through 99.9
    [f] = s.fills
    assert f.liquidity == "maker" and f.price == 99.9
    assert f.fee == pytest.approx(-99.9 * 1.0 / 1e4)  # a rebate


# ---- order types --------------------------------------------------------------------------


def test_limit_marketable_on_arrival_takes_within_the_limit() -> None:
    s = Script().feed(tick(0), order(1, order_type="limit", limit_price=100.2), tick(10))
    [f] = s.fills
    assert f.liquidity == "taker" and f.price == pytest.approx(100.1)


def test_limit_with_impact_takes_only_what_stays_inside_the_limit() -> None:
    # room = (100.10/100.00 - 1)*1e4 - 5 = 5 bps; q_max = V * (5 / (0.15 * 200))^2
    # = 40 / 36 = 1.11 units; each act takes its q_max (impact is per act)
    c = cfg(impact_coeff=0.15, max_daily_participation_pct=100.0)
    s = known_market(c, 40.0, 200.0).feed(tick(0, 99.95, 100.05, size=4.0))
    s.feed(order(1, qty=3.0, order_type="limit", limit_price=100.10), tick(10, 99.95, 100.05, 4.0))
    q_max = 40 * ((100.10 / 100.0 - 1) * 1e4 - 5) ** 2 / 30**2
    assert [f.qty for f in s.fills] == pytest.approx([q_max, q_max])  # one clip per tick
    assert all(f.liquidity == "taker" and f.price <= 100.10 + 1e-9 for f in s.fills)


def test_post_only_fills_only_when_the_market_trades_through() -> None:
    s = Script().feed(tick(0), order(1, order_type="post_only", limit_price=99.9), tick(10))
    s.feed(tick(20, 99.8, 99.9))  # the ask touches 99.9: not through
    assert s.fills == []
    s.feed(tick(30, 99.7, 99.85))  # the ask is below our bid: through
    [f] = s.fills
    assert (f.liquidity, f.price, f.ts_ns) == ("maker", 99.9, T0 + 30 * MS)


def test_post_only_that_would_cross_is_rejected() -> None:
    s = Script().feed(tick(0), order(1, order_type="post_only", limit_price=100.2), tick(10))
    assert s.reasons == ["post_only_would_cross"] and s.fills == []


def test_wide_spread_turns_a_market_order_into_post_only_at_the_bid() -> None:
    s = Script(cfg(strategies={"post_only_spread_bps": 10.0}))
    s.feed(tick(0, 99.9, 100.1), order(1), tick(10, 99.9, 100.1))  # 20 bps wide
    assert s.fills == [] and s.engine.working["o1"].strategy == "post_only"
    assert s.engine.working["o1"].limit_price == 99.9
    s.feed(tick(20, 99.7, 99.85))
    assert s.fills[0].strategy == "post_only" and s.fills[0].price == 99.9


def test_twap_for_a_persistent_signal_slices_on_schedule() -> None:
    rules = {"twap_persistent_orders": 2, "twap_slices": 4, "twap_interval_ms": 100}
    rules["pov_above_volume_pct"] = 1_000  # keep POV out of the way
    s = Script(cfg(strategies=rules)).feed(tick(0), order(1, oid="a"), tick(4))
    assert s.fills[0].strategy == "market"
    s.feed(order(5, qty=4.0, oid="b"))  # second buy within the window -> TWAP
    for ms in range(10, 400, 10):
        s.feed(tick(ms, 100.0 + ms / 1000, 100.1 + ms / 1000))
    twap = [f for f in s.fills if f.order_id == "b"]
    assert [f.qty for f in twap] == pytest.approx([1.0, 1.0, 1.0, 1.0])
    assert [(f.ts_ns - T0) // MS for f in twap] == [7, 107, 207, 307]
    # each slice on the quote in force at its time: ticks at 4 ms, then every 10 ms
    assert [(f.quote_ts_ns - T0) // MS for f in twap] == [4, 100, 200, 300]


def test_pov_above_the_volume_threshold_follows_traded_volume() -> None:
    rules = {"pov_above_volume_pct": 10.0, "pov_rate_pct": 20.0}
    s = Script(cfg(strategies=rules)).feed(tick(0, volume=10.0), order(1, qty=3.0))
    assert s.engine.working["o1"].strategy == "pov"  # 3 > 10 % of 10
    s.feed(tick(10, volume=5.0), tick(20, volume=10.0))
    # arrival on tick 0: 20 % of 10 = 2; next tick: min(rest 1, 20 % of 5) = 1
    assert [f.qty for f in s.fills] == pytest.approx([2.0, 1.0])
    assert s.engine.working == {}


def test_iceberg_above_notional_works_clips() -> None:
    rules = {"iceberg_above_usd": 50_000, "iceberg_display_usd": 20_000, "iceberg_limit_bps": 5}
    s = Script(cfg(strategies=rules)).feed(tick(0, size=10_000.0), order(1, qty=600.0))
    for ms in (10, 20, 30, 40):
        s.feed(tick(ms, size=10_000.0))
    ice = s.fills
    assert ice[0].strategy == "iceberg"
    clip = 20_000 / (100.1 * 1.0005)
    assert [f.qty for f in ice] == pytest.approx([clip, clip, clip, 600 - 3 * clip])
    s2 = Script(cfg(strategies=rules)).feed(tick(0, size=10_000.0), order(1, qty=600.0))
    s2.feed(tick(10, 100.5, 100.6, size=10_000.0))  # ask above the limit 100.15: waits
    assert len(s2.fills) == 1 and "o1" in s2.engine.working


def test_expired_remainder_is_cancelled_with_its_quantity() -> None:
    s = Script(cfg(order_timeout_ms=50)).feed(tick(0), order(1, order_type="limit", limit_price=99))
    s.feed(tick(10), tick(100))
    [r] = s.out.rejections
    assert (r.reason, r.qty, r.filled_qty) == ("expired", 1.0, 0.0)


def test_reduce_only_is_capped_and_never_opens() -> None:
    s = Script().feed(tick(0), order(1, qty=2.0), tick(10))
    s.feed(order(11, qty=5.0, side="sell", oid="r", reduce_only=True), tick(20))
    assert s.fills[-1].qty == pytest.approx(2.0) and s.engine.books["X"].qty == pytest.approx(0)
    s.feed(order(21, qty=1.0, side="sell", oid="r2", reduce_only=True))
    assert s.reasons[-1] == "reduce_only_would_increase"


# ---- idempotence and the kill switch ------------------------------------------------------


def test_a_redelivered_order_never_fills_twice() -> None:
    s = Script(cfg(max_participation_pct=50.0)).feed(tick(0, size=4.0), order(1, qty=3.0))
    s.feed(order(1, qty=3.0), tick(10, size=4.0), order(1, qty=3.0))  # working, then done
    s.feed(tick(20, size=4.0), order(1, qty=3.0))
    assert sum(f.qty for f in s.fills) == pytest.approx(3.0)
    assert s.out.duplicates == 3


def test_halt_cancels_working_orders_and_nothing_fills_after() -> None:
    s = Script(cfg(max_participation_pct=50.0)).feed(tick(0, size=4.0), order(1, qty=10.0))
    s.feed(tick(10, size=4.0))
    filled = sum(f.qty for f in s.fills)
    s.engine.halt(T0 + 11 * MS, s.out)
    [r] = s.out.rejections
    assert r.reason == HALT_REASON and r.qty == pytest.approx(10.0 - filled)
    n = len(s.fills)
    s.feed(tick(20, size=4.0), tick(30, size=4.0), order(25, oid="new"), trading=HALTED)
    s.engine.on_timer(10**30, HALTED, s.out)
    assert len(s.fills) == n and s.reasons[-1] == "trading_halted"


def test_flatten_closes_every_position_at_market() -> None:
    s = Script().feed(tick(0), order(1, qty=3.0), tick(10, 101.0, 101.1))
    s.engine.flatten(T0 + 20 * MS, s.out)
    close = s.fills[-1]
    assert (close.side, close.qty, close.strategy) == ("sell", 3.0, "flatten")
    assert close.price == pytest.approx(101.0) and close.quote_ts_ns == T0 + 10 * MS
    assert s.engine.books["X"].qty == 0
    pnl = s.engine.books["X"]
    assert pnl.realized_pnl_usd == pytest.approx(3 * (101.0 - 100.1))


def test_quote_in_force_holds_for_every_fill() -> None:
    """No fill ever uses a quote later than its fill time, nor an older one than the
    newest at or before it, across every strategy of this file's scripts."""
    s = Script(cfg(max_participation_pct=30.0, impact_coeff=0.15))
    s.feed(tick(0, size=3.0), order(1, qty=4.0), tick(3, size=3.0), order(4, qty=1.0, oid="b"))
    for ms in range(5, 100, 7):
        s.feed(tick(ms, 100 + ms / 100, 100.1 + ms / 100, size=3.0))
    assert s.fills
    for f in s.fills:
        in_force = max((t for t in s.ticks if t.ts_ns <= f.ts_ns), key=lambda t: t.ts_ns)
        assert f.quote_ts_ns == in_force.ts_ns <= f.ts_ns
        assert math.isfinite(f.price)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.1, 50.0), min_size=1, max_size=6),  # order sizes
    st.floats(10.0, 2_000.0),  # the day's volume
    st.sampled_from(["market", "twap", "pov", "iceberg"]),
)
def test_no_order_fills_more_than_5_pct_of_the_days_volume(
    sizes: list[float], volume: float, strategy: str
) -> None:
    s = known_market(cfg(impact_coeff=0.15), volume, 300.0).feed(tick(0, size=1e6))
    for i, qty in enumerate(sizes):
        s.feed(order(1 + i, qty=qty, oid=f"o{i}", order_type=strategy))
    for ms in range(10, 8_000, 500):
        s.feed(tick(ms, size=1e6))
    filled: dict[str, float] = {}
    for f in s.fills:
        filled[f.order_id] = filled.get(f.order_id, 0.0) + f.qty
    assert all(q <= 0.05 * volume * (1 + 1e-9) for q in filled.values())
    capped = [r for r in s.out.rejections if r.reason == "participation_cap"]
    assert all(r.filled_qty == pytest.approx(0.05 * volume) for r in capped)


def test_a_reload_of_the_stats_keys_applies_without_a_restart() -> None:
    s = Script(cfg(prior_daily_vol_bps=300.0, prior_weight_s=3_600.0))
    s.feed(tick(0), tick(10))  # no move: sigma is the prior's
    assert s.engine.market("X").sigma_daily_bps == pytest.approx(300.0, rel=1e-3)
    s.engine.cfg = cfg(prior_daily_vol_bps=100.0, prior_weight_s=3_600.0)  # as on_config
    s.feed(tick(20))
    assert s.engine.market("X").sigma_daily_bps == pytest.approx(100.0, rel=1e-3)
