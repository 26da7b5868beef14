"""Paper books (services/model_router/track.py), hand-worked."""

from __future__ import annotations

import pytest

from services.model_router.track import DAY_NS, TrackRecords

T0 = 20_000 * DAY_NS


def test_a_round_trip_pays_its_costs_and_marks_its_moves() -> None:
    t = TrackRecords(fee_bps=4.0)
    t.roll(T0)
    # edge 10 > cost 1/2 + 4 = 4.5 bps: long one unit at 100
    t.opinion("m", "X", 100.0, 1.0, 10.0, 0.6)
    b = t.books["m"]
    assert (b.trades, b.cost_bps, b.pnl_bps) == (1, 4.5, -4.5)
    t.mark("X", 101.0)  # +100 bps
    assert b.pnl_bps == pytest.approx(95.5)
    # edge 3 < 4.5: flat; the close costs 4.5 more; a hit (95.5 - 4.5 > 0)
    t.opinion("m", "X", 101.0, 1.0, 3.0, 0.6)
    assert b.legs["X"].position == 0.0
    assert (b.closed, b.hits) == (1, 1)
    assert b.pnl_bps == pytest.approx(91.0) and b.turnover == 2.0
    # a flip from short to long costs 2 units: half to each trade
    t.opinion("m", "X", 101.0, 1.0, -10.0, 0.6)
    t.opinion("m", "X", 101.0, 1.0, 10.0, 0.6)
    assert (b.trades, b.closed, b.hits) == (3, 2, 1)  # the short lost its costs
    assert b.legs["X"].trade_pnl_bps == pytest.approx(-4.5)


def test_days_close_together_and_a_late_book_is_aligned() -> None:
    t = TrackRecords(fee_bps=0.0)
    t.roll(T0)
    t.opinion("a", "X", 100.0, 0.0, 10.0, 1.0)
    t.mark("X", 102.0)
    assert t.roll(T0 + DAY_NS + 1)  # day 0 closes: a made 200 bps
    t.opinion("b", "X", 102.0, 0.0, -10.0, 1.0)  # b starts on day 1
    t.mark("X", 101.0)
    t.roll(T0 + 2 * DAY_NS)
    a, b = t.books["a"], t.books["b"]
    assert list(a.daily_bps) == pytest.approx([200.0, 1e4 * (101 / 102 - 1)])
    assert list(b.daily_bps) == pytest.approx([0.0, -1e4 * (101 / 102 - 1)])
    assert len(a.daily_bps) == len(b.daily_bps) == t.days_closed == 2


def test_the_state_round_trips() -> None:
    t = TrackRecords(fee_bps=4.0)
    t.roll(T0)
    t.opinion("m", "X", 100.0, 2.0, 20.0, 0.5)
    t.mark("X", 99.0)
    t.roll(T0 + DAY_NS)
    again = TrackRecords(fee_bps=4.0)
    again.load(t.to_dict())
    assert again.to_dict() == t.to_dict()
