"""The 23:55 report (services/validation/report_job.py): round trips from fills, engine
shares from the opening consensus signal, the day's window, the metrics it can give."""

from __future__ import annotations

import math

import pytest

from services.validation.report_job import DAY_NS, pnl_report, round_trips
from shared.messages import Fill, Order, RiskDecision, Signal

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 10**9


def order(order_id: str, ts_ns: int, side: str, qty: float, price: float) -> Order:
    return Order(
        order_id=order_id,
        symbol="BTC-USD",
        ts_ns=ts_ns,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        position_size_usd=qty * price,
        edge_blended_bps=5.0,
        var_pct=0.1,
        decision_price=price,
    )


def fill(
    order_id: str,
    ts_ns: int,
    side: str,
    qty: float,
    price: float,
    decision_price: float,
    fee: float = 0.0,
    symbol: str = "BTC-USD",
) -> Fill:
    return Fill(
        fill_id=f"f-{order_id}-{ts_ns}",
        order_id=order_id,
        symbol=symbol,
        ts_ns=ts_ns,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        price=price,
        fee=fee,
        slippage_bps=0.0,
        decision_price=decision_price,
        fee_bps=1.0,
    )


def consensus(ts_ns: int, votes: dict[str, tuple[float, float]]) -> Signal:
    """votes: model -> (edge_bps, p); weight 1 each."""
    return Signal(
        symbol="BTC-USD",
        ts_ns=ts_ns,
        model_id="consensus",
        horizon="1m",
        edge_bps=1.0,
        confidence=0.5,
        votes={m: {"edge_bps": e, "p": p, "weight": 1.0} for m, (e, p) in votes.items()},
    )


def book() -> tuple[list[Order], list[Fill], list[Signal]]:
    """Two round trips on day 0 and one still open:

    - trade A, long 2 @ 100 -> 103, fees 0.1 + 0.1: gross 6, net 5.8, opened on a signal
      where a (edge +10, p 0.75) and b (+10, p 0.625) back it 2:1 (c is against);
    - trade B, short 1 @ 200 -> 210, fee 0.2: gross -10, net -10.2, only c backs it;
    - trade C, long 1 opened at 23:00 and never closed.
    """
    t = T0 + 3600 * S
    sigs = [
        consensus(t - 5 * S, {"a": (10.0, 0.75), "b": (10.0, 0.625), "c": (-5.0, 0.6)}),
        consensus(t + 500 * S, {"a": (10.0, 0.75), "b": (10.0, 0.625), "c": (-5.0, 0.9)}),
        consensus(t + 900 * S, {"a": (2.0, 0.6), "c": (-8.0, 0.8)}),
    ]
    orders = [
        order("A1", t, "buy", 2.0, 100.0),
        order("A2", t + 600 * S, "sell", 2.0, 103.0),
        order("B1", t + 1000 * S, "sell", 1.0, 200.0),
        order("B2", t + 2000 * S, "buy", 1.0, 210.0),
        order("C1", T0 + 23 * 3600 * S, "buy", 1.0, 100.0),
    ]
    fills = [
        fill("A1", t + S, "buy", 1.0, 100.0, 100.0, fee=0.05),
        fill("A1", t + 2 * S, "buy", 1.0, 100.0, 100.0, fee=0.05),
        fill("A2", t + 601 * S, "sell", 2.0, 103.0, 103.0, fee=0.1),
        fill("B1", t + 1001 * S, "sell", 1.0, 200.0, 200.0, fee=0.1),
        fill("B2", t + 2001 * S, "buy", 1.0, 210.0, 210.0, fee=0.1),
        fill("C1", T0 + 23 * 3600 * S + S, "buy", 1.0, 100.0, 100.0),
    ]
    return orders, fills, sigs


def test_two_round_trips_attributed_by_engine_and_by_cost() -> None:
    orders, fills, sigs = book()
    rep = pnl_report(orders, fills, sigs, T0, T0 + DAY_NS)
    att = rep["attribution"]
    assert rep["day"] == "2026-01-01"
    assert rep["n_fills"] == 6 and rep["open_trades"] == 1
    assert att["trade_ids"] == ["BTC-USD:A1", "BTC-USD:B1"]
    total = att["total"]
    assert total["gross_pnl_usd"] == pytest.approx(6.0 - 10.0)
    assert total["fees_usd"] == pytest.approx(0.4)
    assert total["net_pnl_usd"] == pytest.approx(5.8 - 10.2)
    assert att["by_cost"]["cost_usd"] == pytest.approx(
        total["gross_pnl_usd"] - total["net_pnl_usd"]
    )
    # a: 2/3 of A; b: 1/3 of A; c: all of B (the signal at B1's order time backs a short)
    eng = att["by_engine"]
    assert eng["a"]["net_pnl_usd"] == pytest.approx(5.8 * 2 / 3)
    assert eng["b"]["net_pnl_usd"] == pytest.approx(5.8 / 3)
    assert eng["c"]["net_pnl_usd"] == pytest.approx(-10.2)
    for part, value in total.items():
        assert math.fsum(e[part] for e in eng.values()) == pytest.approx(value)
    assert att["by_symbol"]["BTC-USD"]["n_trades"] == 2


def test_join_takes_the_latest_signal_at_or_before_the_opening_order() -> None:
    orders, fills, sigs = book()
    # without the 23:55 signal before A1's order, A has no backing vote: unattributed
    rep = pnl_report(orders, fills, sigs[1:], T0, T0 + DAY_NS)
    eng = rep["attribution"]["by_engine"]
    assert eng["unattributed"]["net_pnl_usd"] == pytest.approx(5.8)
    assert eng["c"]["net_pnl_usd"] == pytest.approx(-10.2)
    # no order known: the opening fill's time is used, and the same signals apply
    rep2 = pnl_report([], fills, sigs, T0, T0 + DAY_NS)
    assert (
        rep2["attribution"]["by_engine"]
        == pnl_report(orders, fills, sigs, T0, T0 + DAY_NS)["attribution"]["by_engine"]
    )


def test_only_trades_closed_in_the_day_count() -> None:
    orders, fills, sigs = book()
    later = fill("C1x", T0 + DAY_NS + 60 * S, "sell", 1.0, 101.0, 101.0)
    day0 = pnl_report(orders, [*fills, later], sigs, T0, T0 + DAY_NS)
    assert day0["attribution"]["n_trades"] == 2 and day0["open_trades"] == 1
    day1 = pnl_report(orders, [*fills, later], sigs, T0 + DAY_NS, T0 + 2 * DAY_NS)
    assert day1["day"] == "2026-01-02"
    assert day1["attribution"]["trade_ids"] == ["BTC-USD:C1"]
    assert day1["attribution"]["total"]["gross_pnl_usd"] == pytest.approx(1.0)
    assert day1["open_trades"] == 0 and day1["n_fills"] == 1


def test_a_fill_through_zero_closes_one_trade_and_opens_the_next() -> None:
    fills = [
        fill("X", T0 + S, "buy", 1.0, 100.0, 100.0, fee=0.1),
        fill("Y", T0 + 2 * S, "sell", 3.0, 101.0, 101.0, fee=0.3),
    ]
    trips = round_trips(fills)
    assert [t.close_ts_ns for t in trips] == [T0 + 2 * S, None]
    assert [sum(f["qty"] for f in t.fills) for t in trips] == [2.0, 2.0]
    assert trips[0].fills[1]["fee"] == pytest.approx(0.1)
    assert trips[1].fills[0]["fee"] == pytest.approx(0.2)
    rep = pnl_report([], fills, [], T0, T0 + DAY_NS)
    assert rep["attribution"]["total"]["net_pnl_usd"] == pytest.approx(1.0 - 0.2)
    assert rep["open_trades"] == 1


def test_metrics_from_decisions_signals_and_equity() -> None:
    orders, fills, sigs = book()
    decisions = [
        RiskDecision(
            symbol="BTC-USD",
            ts_ns=o.ts_ns,
            action="order",
            reason="ok",
            trading_state="ACTIVE",
            order_id=o.order_id,
            cost_bps=0.5,
        )
        for o in orders
    ]
    decisions.append(
        RiskDecision(
            symbol="portfolio",
            ts_ns=T0 + 4 * 3600 * S,
            action="breaker",
            reason="breaker:daily_loss 2.1 -> REDUCING",
            trading_state="REDUCING",
        )
    )
    equity = [(T0 + i * 3600 * S, e) for i, e in enumerate([1000.0, 1010.0, 1005.0, 950.0, 990.0])]
    rep = pnl_report(orders, fills, sigs, T0, T0 + DAY_NS, equity, decisions)
    m = rep["daily_metrics"]
    assert m["slippage_n"] == 6
    assert m["slippage_bias_bps"] == pytest.approx(0.5)  # realised 0 + 1 bps fee, predicted 0.5
    assert m["consensus_diversity_n"] == 3
    assert m["early_warning_n"] == 1 and m["early_warning_drawdowns_n"] == 1
    assert m["early_warning_recall"] == 0.0  # the drawdown (at 03:00) came before the warning
    assert m["oos_sharpe_mean"] is None
