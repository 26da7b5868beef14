"""Positions and PnL: hand-worked to the cent, and properties with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution.engine import ExecutionEngine, Outputs
from services.execution.positions import DAY_NS, Account, PositionBook, total_pnl_usd
from tests.unit.test_execution_engine import ACTIVE, MS, T0, Script, cfg, order, tick


def test_average_cost_pnl_reconciles_to_the_cent_by_hand() -> None:
    b = PositionBook()
    b.apply_fill(10, 100.0, 0.20)  # 10 @ 100, fee 2 bps of 1000
    b.apply_fill(5, 106.0, 0.106)  # avg = (1000 + 530) / 15 = 102
    assert b.avg_price == pytest.approx(102.0)
    assert b.apply_fill(-12, 105.0, 0.252) == pytest.approx(36.0)  # 12 * (105 - 102)
    b.mark = 104.0
    assert b.unrealized_pnl_usd == pytest.approx(6.0)  # 3 * (104 - 102)
    assert b.apply_fill(-5, 101.0, 0.101) == pytest.approx(-3.0)  # closes 3 at -1, opens -2
    assert (b.qty, b.avg_price) == (pytest.approx(-2.0), 101.0)
    b.mark = 100.0
    # realized 33.00 + unrealized -2 * (100 - 101) = 2.00 - fees 0.659 = 34.341
    assert round(b.realized_pnl_usd, 2) == 33.00
    assert round(b.unrealized_pnl_usd, 2) == 2.00
    assert round(b.fees_usd, 3) == 0.659
    assert round(b.total_pnl_usd, 2) == 34.34
    # the same by cash flows: -1000 - 530 + 1260 + 505 + (-2 * 100) - 0.659
    assert b.total_pnl_usd == pytest.approx(35.0 - 0.659)


def test_engine_round_trip_pnl_by_hand() -> None:
    # buy 2 at the ask 100.10, sell 2 at the bid 100.50; taker fee 2 bps, no impact
    # realized = 2 * 0.40 = 0.80; fees = 2*100.10*2e-4 + 2*100.50*2e-4 = 0.08024
    s = Script(cfg()).feed(tick(0), order(1, qty=2.0), tick(10, 100.5, 100.6))
    s.feed(order(11, qty=2.0, side="sell", oid="o2"), tick(20, 100.5, 100.6))
    book = s.engine.books["X"]
    assert book.qty == 0
    assert round(book.realized_pnl_usd, 2) == 0.80
    assert book.fees_usd == pytest.approx(0.08024)
    assert round(book.total_pnl_usd, 2) == 0.72
    last = s.out.positions[-1]
    assert round(last.total_pnl_usd, 2) == 0.72 and last.account_pnl_usd == pytest.approx(0.71976)
    assert last.equity_usd == pytest.approx(1_000_000 + 0.71976)


def test_daily_pnl_resets_at_midnight_utc() -> None:
    day = T0 // DAY_NS
    a = Account(starting_equity_usd=1000.0)
    assert a.roll(day * DAY_NS + 5, 0.0)
    assert a.daily_pnl_usd(12.5) == 12.5
    assert not a.roll(day * DAY_NS + DAY_NS - 1, 12.5)  # 23:59:59.999999999 the same day
    assert a.roll((day + 1) * DAY_NS, 12.5)  # 00:00 UTC
    assert a.daily_pnl_usd(20.0) == 7.5 and a.equity_usd(20.0) == 1020.0


@given(st.lists(st.integers(0, 3 * DAY_NS), min_size=1, max_size=20))
def test_new_day_says_whether_roll_would_roll(steps: list[int]) -> None:
    # the engine sums every book for roll only when new_day says a day starts
    a = Account()
    ts = T0
    for step in steps:
        ts += step
        assert a.new_day(ts) == a.roll(ts, float(step))


def test_engine_daily_pnl_across_midnight() -> None:
    e = ExecutionEngine(cfg())
    out = Outputs()
    midnight = (T0 // DAY_NS + 1) * DAY_NS
    s = Script(cfg())
    s.engine = e
    s.out = out
    s.feed(tick(0), order(1, qty=1.0), tick(10, 101.0, 101.1))  # long 1 bought at 100.10
    before = total_pnl_usd(e.books)
    late = tick((midnight - T0) / MS + 1, 102.0, 102.1)
    e.on_tick(late, ACTIVE, out)
    assert e.account.day == midnight // DAY_NS
    assert e.account.day_start_pnl_usd == pytest.approx(before)
    assert e.account.daily_pnl_usd(total_pnl_usd(e.books)) == pytest.approx(1.0)  # 101.05->102.05


fills = st.lists(
    st.tuples(
        st.floats(-50, 50).filter(lambda q: abs(q) > 1e-3),
        st.floats(1, 1000),
        st.floats(-1, 5),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(fills, st.floats(1, 1000))
def test_total_pnl_equals_cash_flows_plus_marked_position(
    trades: list[tuple[float, float, float]], mark: float
) -> None:
    """realized + unrealized - fees == -sum(q * p) - sum(fees) + Q * mark, always."""
    b = PositionBook()
    for q, p, fee in trades:
        b.apply_fill(q, p, fee)
    b.mark = mark
    cash = -sum(q * p for q, p, _ in trades) - sum(f for _, _, f in trades)
    expected = cash + sum(q for q, _, _ in trades) * mark
    scale = 1 + sum(abs(q) * p for q, p, _ in trades)
    assert b.total_pnl_usd == pytest.approx(expected, abs=1e-9 * scale)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.001, 100), min_size=1, max_size=10), st.floats(1, 1000))
def test_round_trip_at_one_price_without_fees_is_zero(qtys: list[float], price: float) -> None:
    b = PositionBook()
    for q in qtys:
        b.apply_fill(q, price, 0.0)
    b.apply_fill(-sum(qtys), price, 0.0)
    assert abs(b.qty) < 1e-9
    assert b.total_pnl_usd == pytest.approx(0.0, abs=1e-9 * price * sum(qtys))


@settings(max_examples=100, deadline=None)
@given(st.floats(0.01, 5), st.floats(10, 1000))
def test_engine_round_trip_with_zero_spread_and_fees_is_flat_and_zero(
    qty: float, price: float
) -> None:
    s = Script(cfg(taker_fee_bps=0.0, maker_fee_bps=0.0))
    s.feed(tick(0, price, price, size=100.0), order(1, qty=qty))
    s.feed(order(2, qty=qty, side="sell", oid="o2"), tick(10, price, price, size=100.0))
    book = s.engine.books["X"]
    assert abs(book.qty) < 1e-9 and book.total_pnl_usd == pytest.approx(0.0, abs=1e-9 * price)


def test_book_as_dict_is_every_field() -> None:
    from dataclasses import asdict

    b = PositionBook(qty=1.5, avg_price=100.25, realized_pnl_usd=-3.0, fees_usd=0.125, mark=101.0)
    assert list(b.as_dict().items()) == list(asdict(b).items())
    assert PositionBook(**b.as_dict()) == b


def test_funding_is_charged_for_the_time_actually_held() -> None:
    # seed 003 §4: rate_bps * hours / 8. Long 2 at 100 opened at t = 0 and 1 more at
    # t = 8 h (entry time 8/3 h on average); selling 3 at t = 16 h closes 3 units held
    # 16 - 8/3 = 13.33 h on average at A = 100: 3 * 100 * 10 bps * 13.33 / 8 = 0.5 USD.
    h = 3_600 * 10**9
    b = PositionBook()
    b.apply_fill(2.0, 100.0, 0.0, 0)
    assert b.funding_due(1.0, 8 * h, 10.0) == 0.0  # adding pays nothing
    b.apply_fill(1.0, 100.0, 0.0, 8 * h)
    assert b.entry_ts_ns == pytest.approx(8 * h / 3)
    due = b.funding_due(-3.0, 16 * h, 10.0)
    assert due == pytest.approx(3 * 100 * 10 / 1e4 * (16 - 8 / 3) / 8)
    b.apply_fill(-3.0, 100.0, 0.0, 16 * h, due)
    assert b.qty == 0 and b.total_pnl_usd == pytest.approx(-due)
