"""The fill model's formulas, and the property that no fill uses a later quote."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution import fill_model as fm
from services.execution.config import VenueFees
from shared.messages import Order
from tests.unit.test_execution_engine import Script, cfg, order, tick


def test_taker_price_is_mid_plus_half_spread_plus_sqrt_impact() -> None:
    q = tick(0, 99.0, 101.0, size=16.0)  # mid 100, half-spread 100 bps
    m = fm.Market(daily_volume=1_600.0, sigma_daily_bps=400.0, coeff=0.25)
    price, imp = fm.taker_price(q, "buy", 16.0, m)  # 0.25 * 400 * sqrt(16/1600) = 10 bps
    assert imp == pytest.approx(10.0)
    assert price == pytest.approx(100 * (1 + 110 / 1e4))
    assert fm.taker_price(q, "sell", 0.0, m)[0] == pytest.approx(99.0)  # the bid


def test_impact_grows_with_the_square_root_of_size() -> None:
    m = fm.Market(100.0, 300.0, 0.15, 5.0)
    assert fm.impact_bps(4.0, m, 1.0) == pytest.approx(2 * fm.impact_bps(1.0, m, 1.0))
    # the day's volume unknown: seed 003 §4's 5 bps * sqrt(q / D) on the depth
    unknown = fm.Market(0.0, 300.0, 0.15, 5.0)
    assert fm.impact_bps(1.0, unknown, 4.0) == pytest.approx(2.5)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 200.0),
    st.floats(0.01, 2.0),
    st.floats(1.0, 1e6),
    st.sampled_from(["buy", "sell"]),
)
def test_max_qty_within_limit_prices_at_the_limit(
    room_bps: float, coeff: float, volume: float, side: str
) -> None:
    q = tick(0, 99.95, 100.05, size=7.0)
    m = fm.Market(volume, 250.0, coeff)
    d = 1.0 if side == "buy" else -1.0
    touch = q.ask if side == "buy" else q.bid
    limit = touch * (1 + d * room_bps / 1e4)
    qmax = fm.max_qty_within_limit(q, side, limit, m)  # type: ignore[arg-type]
    price, _ = fm.taker_price(q, side, qmax, m)  # type: ignore[arg-type]
    assert d * (price - limit) <= 1e-9 * limit


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.01, 1e6),
    st.floats(0.01, 1e4),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["maker", "taker"]),
    st.floats(0.0, 20.0),
)
def test_fees_are_never_below_the_minimum_and_sells_pay_the_tax(
    qty: float, price: float, side: str, liquidity: str, min_usd: float
) -> None:
    fees = VenueFees(
        taker_fee_bps=2.5, maker_fee_bps=2.5, min_commission_usd=min_usd, sell_tax_bps=10.0
    )
    got = fm.fee_usd(qty, price, side, liquidity, fees)  # type: ignore[arg-type]
    notional = qty * price
    tax = notional * 10.0 / 1e4 if side == "sell" else 0.0
    assert got == pytest.approx(max(notional * 2.5 / 1e4, min_usd) + tax, rel=1e-12)
    assert fm.fee_bps(notional, side, liquidity, fees) == pytest.approx(  # type: ignore[arg-type]
        got / notional * 1e4, rel=1e-9
    )


def test_a_rebate_has_no_minimum() -> None:
    fees = VenueFees(maker_fee_bps=-1.0, min_commission_usd=5.0)
    assert fm.fee_usd(1.0, 100.0, "buy", "maker", fees) == pytest.approx(-0.01)


order_specs = st.lists(
    st.tuples(
        st.integers(0, 400),  # decision time, ms
        st.floats(0.1, 8.0),  # qty
        st.sampled_from(["buy", "sell"]),
        st.sampled_from(["market", "limit", "post_only", "twap", "pov", "iceberg"]),
        st.floats(-30, 30),  # limit offset from 100, bps
        st.integers(0, 30),  # ticks seen before the order reaches execution
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.parametrize(
    "late",
    [
        False,
        True,
    ],
)
@settings(max_examples=150, deadline=None, report_multiple_bugs=False)
@given(
    st.lists(st.integers(1, 40), min_size=5, max_size=40),  # gaps between ticks, ms
    st.lists(st.floats(-40, 40), min_size=40, max_size=40),  # mid moves, bps
    order_specs,
    st.floats(5, 100),
)
def test_no_fill_ever_uses_a_quote_later_than_its_fill_time(
    late: bool, gaps: list[int], moves: list[float], specs: list[tuple], cap_pct: float
) -> None:
    """For any tick sequence and any orders, every fill is priced on the quote in force
    at its fill time: the newest with ts <= fill ts.

    Event time: the runtime hands the engine ticks and orders in event-time order
    (``late=False``; an order received early waits for the ticks before it); an order
    can still come after ticks past its arrival when its producer was stepped over
    (``late=True``: received after ``seen`` ticks)."""
    c = cfg(max_participation_pct=cap_pct, impact_coeff=0.15)
    s = Script(c)
    ticks, ms, mid = [], 0, 100.0
    for gap, move in zip(gaps, moves, strict=False):
        ms += gap
        mid *= 1 + move / 1e4
        ticks.append(tick(ms, mid - 0.05, mid + 0.05, size=3.0, volume=5.0))
    pending = sorted(
        (
            (
                seen,
                order(
                    t,
                    qty=qty,
                    side=side,
                    oid=f"o{i}",
                    order_type=kind,
                    limit_price=100 * (1 + off / 1e4) if kind in ("limit", "post_only") else None,
                ),
            )
            for i, (t, qty, side, kind, off, seen) in enumerate(specs)
        ),
        key=lambda pair: pair[0],
    )
    # Each order is fed after the ticks stamped at or before its decision time (the
    # merge's order: event time, the market first), or with ``late``, after ``seen``
    # ticks when that is later (a late entry). The script is one producer, complete
    # through what it fed: feeding ahead of event time would make the ticks late.
    stamps = [t.ts_ns for t in ticks]
    slots: dict[int, list[Order]] = {}
    for seen, o in pending:
        at = bisect.bisect_right(stamps, o.ts_ns)
        slots.setdefault(max(at, seen) if late else at, []).append(o)
    for i in range(len(ticks) + 1):
        s.feed(*sorted(slots.get(i, []), key=lambda o: o.ts_ns))
        if i < len(ticks):
            s.feed(ticks[i])
    s.until(10_000)  # every arrival timer fires
    for f in s.fills:
        assert f.quote_ts_ns is not None and f.quote_ts_ns <= f.ts_ns
        assert f.quote_ts_ns == max(ts for ts in stamps if ts <= f.ts_ns)
