"""DualBooks (seed 002's two books): caps, reserve, clip, PnL per book vs the total."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.risk_harmoniser.books import DualBooks
from services.risk_harmoniser.portfolio import Holding
from services.risk_harmoniser.profiles import BookCaps

BOOK = st.sampled_from(["scalp", "runner"])
SYMBOL = st.sampled_from(["BTC-USD", "ETH-USD", "AAPL"])


def test_seed_caps_are_the_defaults() -> None:
    caps = DualBooks(1_000_000.0).caps
    assert (caps.scalp_heat_pct, caps.runner_heat_pct, caps.reserve_pct) == (40.0, 50.0, 10.0)
    assert caps.deployable_pct == 90.0


def test_heat_and_room_hand_worked() -> None:
    # docs/dual_mode.md example 1: E = 100k, scalp 0.5 BTC at 50k (25k), runner 45k of ETH
    b = DualBooks(100_000.0)
    b.on_fill("scalp", "BTC-USD", 0.5, 50_000.0, 5.0)
    b.on_fill("runner", "ETH-USD", 15.0, 3_000.0, 9.0)
    assert b.gross_usd("scalp") == pytest.approx(25_000.0)
    assert b.heat("scalp") == pytest.approx(25_000.0 / 40_000.0)
    assert b.heat("runner") == pytest.approx(45_000.0 / 50_000.0)
    assert b.room_usd("scalp") == pytest.approx(15_000.0)
    assert b.room_usd("runner") == pytest.approx(5_000.0)
    # a scalp target of 60k BTC is cut to 25k held + 15k room
    assert b.clip("scalp", "BTC-USD", 60_000.0) == pytest.approx(40_000.0)
    # a new scalp short in ETH gets the room, signed
    assert b.clip("scalp", "ETH-USD", -30_000.0) == pytest.approx(-15_000.0)
    # within the room: unchanged
    assert b.clip("runner", "ETH-USD", 48_000.0) == 48_000.0


def test_reductions_and_flips_pass_even_over_the_cap() -> None:
    b = DualBooks(100_000.0)
    b.on_fill("runner", "ETH-USD", 15.0, 3_000.0)
    b.mark("ETH-USD", 4_000.0)  # 60k: over the 50k cap by the mark alone
    assert b.heat("runner") == pytest.approx(1.2)
    assert b.room_usd("runner") == 0.0
    assert b.clip("runner", "ETH-USD", 70_000.0) == pytest.approx(60_000.0)  # no increase
    assert b.clip("runner", "ETH-USD", 10_000.0) == 10_000.0  # reduction
    assert b.clip("runner", "ETH-USD", -60_000.0) == -60_000.0  # flip, same gross
    assert b.clip("runner", "BTC-USD", 1_000.0) == 0.0  # a new position: no room


def test_reserve_binds_when_a_book_is_over_its_cap() -> None:
    # docs/dual_mode.md example 2: runner 60k (over its 50k cap by the mark), scalp 30k:
    # both books hold 90k = E - reserve, so the scalp has no room despite 10k below its cap
    b = DualBooks(100_000.0)
    b.on_fill("runner", "ETH-USD", 15.0, 3_000.0)
    b.mark("ETH-USD", 4_000.0)
    b.on_fill("scalp", "BTC-USD", 0.6, 50_000.0)
    assert b.cap_usd("scalp") - b.gross_usd("scalp") == pytest.approx(10_000.0)
    assert b.room_usd("scalp") == 0.0
    assert b.clip("scalp", "BTC-USD", 40_000.0) == pytest.approx(30_000.0)


def test_a_zero_cap_book_opens_nothing() -> None:
    b = DualBooks(100_000.0, BookCaps(scalp_heat_pct=0.0, runner_heat_pct=90.0))
    assert b.clip("scalp", "BTC-USD", 5_000.0) == 0.0
    assert b.heat("scalp") == 0.0
    b.on_fill("scalp", "BTC-USD", 0.1, 50_000.0)
    assert b.heat("scalp") == math.inf


def test_books_are_independent_and_realised_split_differs_from_netting() -> None:
    # docs/dual_mode.md example 3: scalp long 1 @ 100, runner short 1 @ 110, mark 105
    b = DualBooks(100_000.0)
    b.on_fill("scalp", "X", 1.0, 100.0, 0.1)
    b.on_fill("runner", "X", -1.0, 110.0, 0.1)
    b.mark("X", 105.0)
    s, r = b.pnl("scalp"), b.pnl("runner")
    assert (s.realised_usd, s.unrealised_usd) == (0.0, pytest.approx(5.0))
    assert (r.realised_usd, r.unrealised_usd) == (0.0, pytest.approx(5.0))
    assert b.net_qty("X") == 0.0
    assert b.total().gross_usd == pytest.approx(210.0)  # never netted
    combined = Holding()
    combined.apply(1.0, 100.0, 0.1)
    combined.apply(-1.0, 110.0, 0.1)
    assert combined.realized_usd == pytest.approx(10.0)  # one book: closed, all realised
    assert b.total().net_usd == pytest.approx(combined.realized_usd - combined.fees_usd)


def test_bad_inputs_name_what_is_wrong() -> None:
    b = DualBooks(1_000.0)
    with pytest.raises(ValueError, match="book"):
        b.on_fill("swing", "X", 1.0, 1.0)
    with pytest.raises(ValueError, match="price"):
        b.on_fill("scalp", "X", 1.0, 0.0)
    with pytest.raises(ValueError, match="mark of X"):
        b.mark("X", math.nan)
    with pytest.raises(ValueError, match="equity_usd"):
        DualBooks(0.0)
    with pytest.raises(ValueError, match="target_usd"):
        b.clip("scalp", "X", math.inf)


def test_round_trip_and_snapshot() -> None:
    b = DualBooks(250_000.0, BookCaps(scalp_heat_pct=30.0))
    b.on_fill("scalp", "BTC-USD", 0.2, 50_000.0, 2.0)
    b.on_fill("scalp", "BTC-USD", -0.1, 51_000.0, 1.0)
    b.on_fill("runner", "AAPL", -10.0, 200.0, 0.5)
    b.mark("BTC-USD", 52_000.0)
    c = DualBooks.from_dict(b.to_dict())
    assert c.to_dict() == b.to_dict()
    assert c.snapshot() == b.snapshot()
    snap = b.snapshot()
    assert set(snap) == {"scalp", "runner", "total"}
    assert snap["scalp"]["positions"]["BTC-USD"]["qty"] == pytest.approx(0.1)
    assert snap["scalp"]["pnl"]["realised_usd"] == pytest.approx(100.0)
    assert snap["scalp"]["heat"] == pytest.approx(5_200.0 / 75_000.0)
    assert snap["runner"]["positions"]["AAPL"]["value_usd"] == pytest.approx(-2_000.0)
    assert snap["total"]["pnl"]["net_usd"] == pytest.approx(
        snap["scalp"]["pnl"]["net_usd"] + snap["runner"]["pnl"]["net_usd"]
    )


FILL = st.tuples(
    BOOK,
    SYMBOL,
    st.floats(-5.0, 5.0, allow_nan=False).filter(lambda q: abs(q) > 1e-6),
    st.floats(1.0, 1_000.0),
    st.floats(0.0, 2.0),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(FILL, max_size=40), st.lists(st.floats(1.0, 1_000.0), min_size=3, max_size=3))
def test_per_book_pnl_sums_to_the_cash_flow_and_combined_book(
    fills: list[tuple[str, str, float, float, float]], marks: list[float]
) -> None:
    b = DualBooks(1_000_000.0)
    combined: dict[str, Holding] = {}
    cash = 0.0
    for book, symbol, qty, price, fee in fills:
        b.on_fill(book, symbol, qty, price, fee)
        combined.setdefault(symbol, Holding()).apply(qty, price, fee)
        cash -= qty * price + fee
    mark = dict(zip(["BTC-USD", "ETH-USD", "AAPL"], marks, strict=True))
    for symbol, m in mark.items():
        b.mark(symbol, m)
    net_qty = {s: sum(q for _, s2, q, _, _ in fills if s2 == s) for s in mark}
    cash_flow_pnl = cash + sum(net_qty[s] * mark[s] for s in mark)
    per_book = sum(b.pnl(book).net_usd for book in ("scalp", "runner"))
    one_book = sum(
        h.realized_usd - h.fees_usd + h.qty * (mark[s] - h.avg_price) for s, h in combined.items()
    )
    scale = 1.0 + sum(abs(q) * p for _, _, q, p, _ in fills)
    assert per_book == pytest.approx(cash_flow_pnl, abs=1e-9 * scale)
    assert per_book == pytest.approx(one_book, abs=1e-9 * scale)
    assert b.total().net_usd == pytest.approx(per_book, abs=1e-9 * scale)
    for s in mark:
        assert b.net_qty(s) == pytest.approx(net_qty[s], abs=1e-9)


TARGET = st.tuples(BOOK, SYMBOL, st.floats(-2e6, 2e6, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(TARGET, max_size=40),
    st.floats(0.0, 60.0),
    st.floats(0.0, 60.0),
    st.floats(0.0, 30.0),
)
def test_clipped_targets_never_take_a_book_over_its_cap(
    targets: list[tuple[str, str, float]], scalp_pct: float, runner_pct: float, reserve: float
) -> None:
    if scalp_pct + runner_pct + reserve > 100.0:
        reserve = 100.0 - scalp_pct - runner_pct
    if reserve < 0.0:
        return
    caps = BookCaps(scalp_heat_pct=scalp_pct, runner_heat_pct=runner_pct, reserve_pct=reserve)
    b = DualBooks(1_000_000.0, caps)
    prices = {"BTC-USD": 50_000.0, "ETH-USD": 3_000.0, "AAPL": 200.0}
    for symbol, px in prices.items():
        b.mark(symbol, px)
    eps = 1e-6
    for book, symbol, target in targets:
        clipped = b.clip(book, symbol, target)
        assert abs(clipped) <= abs(target)
        b.on_fill(book, symbol, (clipped - b.value_usd(book, symbol)) / prices[symbol], 1.0, 0.0)
        for name in ("scalp", "runner"):
            assert b.gross_usd(name) <= b.cap_usd(name) + eps
        assert b.total().gross_usd <= b.deployable_usd() + eps


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TARGET, st.floats(0.5, 2.0)), max_size=30))
def test_with_moving_marks_a_clipped_trade_never_adds_gross_over_a_limit(
    steps: list[tuple[tuple[str, str, float], float]],
) -> None:
    b = DualBooks(1_000_000.0)
    prices = {"BTC-USD": 50_000.0, "ETH-USD": 3_000.0, "AAPL": 200.0}
    eps = 1e-6
    for (book, symbol, target), move in steps:
        prices[symbol] *= move  # marks move the books over their caps by themselves
        b.mark(symbol, prices[symbol])
        before = {n: b.gross_usd(n) for n in ("scalp", "runner")}
        total_before = b.total().gross_usd
        clipped = b.clip(book, symbol, target)
        b.on_fill(book, symbol, (clipped - b.value_usd(book, symbol)) / prices[symbol], 1.0)
        assert b.gross_usd(book) <= max(b.cap_usd(book), before[book]) + eps
        assert b.total().gross_usd <= max(b.deployable_usd(), total_before) + eps
