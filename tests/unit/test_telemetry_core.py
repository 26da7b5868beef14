"""Telemetry's pure core: trades and realized PnL, attribution, drawdown, hop latency,
RedisTimeSeries detection and command building. Hand-worked examples + properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.telemetry.latency import entry_ms, hops_s
from services.telemetry.timeseries import add_commands, has_timeseries, key_for
from services.telemetry.trades import (
    Bounded,
    DecisionContext,
    Drawdown,
    TradeLedger,
    costs_bps,
    split_by_votes,
)
from shared.messages import STREAMS, Event

pytestmark = pytest.mark.monitoring

CTX_A = DecisionContext(expected_edge_bps=5.0, regime="TREND", model_id="consensus")
CTX_B = DecisionContext(expected_edge_bps=-4.0, regime="RANGE", model_id="consensus")


def test_round_trip_realizes_pnl_only_on_the_closing_fill() -> None:
    # buy 2 @ 100, buy 2 @ 110 (avg 105), sell 3 @ 120 (+45), sell 1 @ 90 (-15): closes, +30
    led = TradeLedger()
    a = led.on_fill("X", 2, 100.0, 0.1, "o1", CTX_A)
    assert (a.realized_usd, a.closed, a.trade.trade_id) == (0.0, None, "o1")
    b = led.on_fill("X", 2, 110.0, 0.1, "o2", CTX_B)
    assert b.closed is None and b.trade.trade_id == "o1"  # adding: same trade
    c = led.on_fill("X", -3, 120.0, 0.1, "o3", CTX_B)
    assert c.realized_usd == pytest.approx(45.0) and c.closed is None
    d = led.on_fill("X", -1, 90.0, 0.1, "o4", CTX_B)
    assert d.realized_usd == pytest.approx(-15.0)
    assert d.closed is not None and d.closed.trade_id == "o1"
    assert d.closed.realized_pnl_usd == pytest.approx(30.0)
    assert d.closed.context is CTX_A  # attributed to the decision that opened it
    assert "X" not in led.open


def test_crossing_zero_closes_and_opens_the_next_trade() -> None:
    # short 1 @ 50, buy 3 @ 40: closes the short (+10) and opens a long of 2 under o2
    led = TradeLedger()
    led.on_fill("Y", -1, 50.0, 0.0, "o1", CTX_A)
    out = led.on_fill("Y", 3, 40.0, 0.0, "o2", CTX_B)
    assert out.closed is not None and out.closed.realized_pnl_usd == pytest.approx(10.0)
    assert led.open["Y"].trade_id == "o2" and led.open["Y"].context is CTX_B
    assert led.books["Y"].qty == pytest.approx(2.0) and led.books["Y"].avg_price == 40.0


@given(
    st.lists(
        st.tuples(
            st.floats(-5, 5).filter(lambda q: abs(q) > 1e-3),
            st.floats(1, 1000),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_closed_trades_sum_to_realized_pnl(fills: list[tuple[float, float]]) -> None:
    """Whatever the path, the realized PnL of closed trades plus the open trade's equals
    the book's realized PnL: nothing is lost or counted twice."""
    led = TradeLedger()
    closed_sum = 0.0
    for i, (q, p) in enumerate(fills):
        out = led.on_fill("Z", q, p, 0.0, f"o{i}", CTX_A)
        if out.closed is not None:
            closed_sum += out.closed.realized_pnl_usd
    open_part = led.open["Z"].realized_pnl_usd if "Z" in led.open else 0.0
    assert closed_sum + open_part == pytest.approx(led.books["Z"].realized_pnl_usd, abs=1e-6)


def test_costs_bps_is_fee_plus_slippage_over_notional() -> None:
    # 2 @ 100 = 200 USD notional, fee 0.1 USD = 5 bps, slippage 1.5 bps
    assert costs_bps(2, 100.0, 0.1, 1.5) == pytest.approx(6.5)
    assert costs_bps(2, 100.0, -0.02, 0.0) == pytest.approx(-1.0)  # maker rebate


def test_split_by_votes_by_weight_and_fallback() -> None:
    votes = {"ema": {"weight": 0.75, "edge_bps": 3}, "ob": {"weight": 0.25}, "x": {"weight": -1}}
    assert split_by_votes(100.0, votes, "consensus") == pytest.approx({"ema": 75.0, "ob": 25.0})
    assert split_by_votes(-8.0, None, "ema") == {"ema": -8.0}
    assert split_by_votes(3.0, {"a": {"weight": "x"}, "b": 2}, "") == {"unknown": 3.0}


@given(
    st.floats(-1e6, 1e6),
    st.dictionaries(st.sampled_from("abcdef"), st.floats(0, 10), min_size=1),
)
def test_split_by_votes_preserves_the_total(pnl: float, weights: dict[str, float]) -> None:
    votes = {m: {"weight": w} for m, w in weights.items()}
    assert sum(split_by_votes(pnl, votes, "f").values()) == pytest.approx(pnl, abs=1e-6)


def test_drawdown_from_peak() -> None:
    # equity 1000: pnl 0 -> 100 (peak) -> 40: dd 60 USD = 60 / 1100 = 5.4545 %
    d = Drawdown(1000.0)
    assert d.update(0.0) == (0.0, 0.0)
    assert d.update(100.0) == (0.0, 0.0)
    dd_usd, dd_pct = d.update(40.0)
    assert dd_usd == pytest.approx(60.0) and dd_pct == pytest.approx(60 / 1100 * 100)
    assert d.update(-50.0)[0] == pytest.approx(150.0)  # peak stays 100


def test_bounded_forgets_the_oldest() -> None:
    b: Bounded[str, int] = Bounded(2)
    b["a"], b["b"], b["c"] = 1, 2, 3
    assert list(b) == ["b", "c"]


def test_entry_ms_and_hops() -> None:
    assert entry_ms("1700000000123-4") == 1700000000123
    assert entry_ms("*") is None and entry_ms("") is None
    trace_ns = 1_700_000_000_000_000_000  # tick at t
    hops = hops_s(trace_ns, 1700000000005, 1700000000012, 1700000000020, trace_ns + 25_000_000)
    assert hops == pytest.approx(
        {
            "tick_to_signal": 0.005,
            "signal_to_order": 0.007,
            "order_to_fill": 0.008,
            "fill_to_telemetry": 0.005,
        }
    )
    # unknown signal stamp: only the hops it does not touch; clock skew clamps at 0
    partial = hops_s(trace_ns, None, 1699999999999, 1700000000020, trace_ns + 20_000_000)
    assert set(partial) == {"order_to_fill", "fill_to_telemetry"}
    assert partial["fill_to_telemetry"] == 0.0


def test_has_timeseries_reads_every_module_list_shape() -> None:
    assert has_timeseries([{b"name": b"timeseries", b"ver": 11005}])
    assert has_timeseries([["name", "search", "ver", 1], ["name", "TimeSeries", "ver", 2]])
    assert not has_timeseries([{"name": "search", "ver": 1}])
    assert not has_timeseries([]) and not has_timeseries(None)


def test_add_commands_builds_labelled_ts_add() -> None:
    cmds = add_commands(
        [("var_pct", "BTC-USD", 1000, 1.25), ("pnl_usd", "portfolio", 1001, math.nan)], 60_000
    )
    assert cmds == [
        (
            "TS.ADD",
            "edgebus:ts:var_pct:BTC-USD",
            1000,
            "1.25",
            "RETENTION",
            60_000,
            "ON_DUPLICATE",
            "LAST",
            "LABELS",
            "source",
            "edgebus",
            "metric",
            "var_pct",
            "symbol",
            "BTC-USD",
        )
    ]  # the NaN sample is dropped
    assert key_for("edge_blended_bps", "portfolio") == "edgebus:ts:edge_blended_bps:portfolio"


def test_event_round_trips_on_the_wire() -> None:
    assert STREAMS["events"] is Event
    ev = Event(
        symbol="X",
        ts_ns=1,
        action="buy",
        size_usd=200.0,
        price=100.0,
        engine_votes={"ema": {"weight": 1.0}},
        consensus_score=0.8,
    )
    fields = ev.to_fields()
    assert "realized_pnl_usd" not in fields  # empty until the trade closes
    wire = {k: str(v) for k, v in fields.items()}
    assert Event.from_fields(wire) == ev
