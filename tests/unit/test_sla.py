"""The fill-time SLA (services/calibration/sla.py): statistics, the two switch rules, the
hysteresis back to maker, per (asset, book) isolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.calibration.sla import FillSla, SlaParams


def test_statistics_of_the_window() -> None:
    sla = FillSla(SlaParams(window=5, min_orders=5))
    for t in (1.0, 2.0, None, 3.0, 4.0):
        sla.record("BTC-USD", "scalp", t)
    s = sla.stats("BTC-USD", "scalp")
    assert s["fill_rate"] == pytest.approx(0.8)
    assert s["mean_time_to_fill_s"] == pytest.approx(2.5)
    assert s["p95_time_to_fill_s"] == pytest.approx(float(np.percentile([1, 2, 3, 4], 95)))
    assert (s["timeouts"], s["window_timeouts"], s["orders"]) == (1, 1, 5)
    # the window slides: 5 more fills push the timeout out
    for _ in range(5):
        sla.record("BTC-USD", "scalp", 1.0)
    s = sla.stats("BTC-USD", "scalp")
    assert (s["fill_rate"], s["window_timeouts"], s["timeouts"]) == (1.0, 0, 1)


def test_low_fill_rate_switches_to_taker() -> None:
    sla = FillSla()  # window 50, min_orders 20, fill rate < 0.70
    # a timeout then 2 fills, repeated: 66.7 % fill rate, fast fills
    outcomes = [None, 1.0, 1.0] * 10
    modes = [sla.record("ETH-USD", "scalp", t) for t in outcomes]
    assert modes[18] == "maker"  # 19 orders: too few to judge
    assert modes[19] == "taker"  # the 20th: 13 / 20 = 0.65 < 0.70
    assert sla.should_switch_to_taker("ETH-USD", "scalp")
    assert not sla.should_switch_to_taker("ETH-USD", "runner")  # per book
    assert not sla.should_switch_to_taker("BTC-USD", "scalp")  # per asset


def test_slow_p95_switches_per_book_sla() -> None:
    sla = FillSla()
    # every order fills, 12 s each: over scalp's 10 s SLA, well inside runner's 300 s
    for _ in range(20):
        sla.record("SOL-USD", "scalp", 12.0)
        sla.record("SOL-USD", "runner", 12.0)
    assert sla.should_switch_to_taker("SOL-USD", "scalp")
    assert not sla.should_switch_to_taker("SOL-USD", "runner")
    assert sla.stats("SOL-USD", "scalp")["sla_s"] == 10.0


def test_hysteresis_back_to_maker() -> None:
    sla = FillSla()
    for _ in range(20):
        sla.record("X", "scalp", None)  # all time out
    assert sla.should_switch_to_taker("X", "scalp")
    # taker orders do not move the maker statistics
    for _ in range(100):
        sla.record("X", "scalp", 0.1, liquidity="taker")
    assert sla.should_switch_to_taker("X", "scalp")
    # probes at 75 % fill rate: above the switch level (70 %), below the resume level (80 %)
    for t in [2.0, 2.0, 2.0, None] * 10:
        sla.record("X", "scalp", t)
    assert sla.should_switch_to_taker("X", "scalp")
    # fills at 9 s: under the 10 s SLA but over the resume level 0.8 x 10 = 8 s: taker holds
    for _ in range(20):
        sla.record("X", "scalp", 9.0)
    assert sla.should_switch_to_taker("X", "scalp")
    # fast fills: the resume looks at the last 50 maker orders since the switch; it comes
    # once at most 3 of them are 9 s: p95 of 50 is the sorted value at rank 0.95 x 49 =
    # 46.55, 1 + 0.55 x 8 = 5.4 s with 3 at 9 s, 9 s with 4
    modes = [sla.record("X", "scalp", 1.0) for _ in range(50)]
    assert modes[45] == "taker"
    assert modes[46] == "maker"
    assert not sla.should_switch_to_taker("X", "scalp")
    s = sla.stats("X", "scalp")
    assert s["switches"] == 2 and s["taker_orders"] == 100
    # no flapping: the old timeouts left the window on the resume
    assert sla.record("X", "scalp", None) == "maker"
    assert s["window_orders"] <= 50


def test_a_pair_never_seen_is_maker_and_nan_stats() -> None:
    sla = FillSla()
    assert not sla.should_switch_to_taker("Y", "runner")
    s = sla.stats("Y", "runner")
    assert math.isnan(s["fill_rate"]) and math.isnan(s["p95_time_to_fill_s"])


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        SlaParams(min_fill_rate=0.9, resume_fill_rate=0.8)
    with pytest.raises(ValueError, match="min_orders"):
        SlaParams(window=10, min_orders=20)
    with pytest.raises(ValueError, match="time_to_fill_s"):
        FillSla().record("X", "scalp", -1.0)
