"""The one impact model (services/execution/impact.py): hand-worked numbers and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution import impact

S = 1_000_000_000  # ns per second


def test_estimate_by_hand() -> None:
    # sigma_daily 200 bps, 1 % of the day's volume, Y 0.15: impact 0.15 * 200 * 0.1 = 3 bps;
    # half-spread 1; 2 ms -> (2 / 10) * 0.1 = 0.02 bps; expected 4.02 bps. sd: 50 % of the
    # impact, 1.5 bps, and the move in flight 200 * sqrt(0.002 / 86400) = 0.000962 bps:
    # sd = 1.5000003; high = 4.02 + 1.645 * sd = 6.4875; worst = 4.02 + 2.326 * sd = 7.509
    e = impact.estimate(1.0, 10.0, 1_000.0, 200.0, 0.15, 2.0, 0.1)
    assert e.participation == pytest.approx(0.01)
    assert e.impact_bps == pytest.approx(3.0)
    assert e.latency_bps == pytest.approx(0.02)
    assert e.expected_bps == pytest.approx(4.02)
    sd = math.hypot(1.5, 200 * math.sqrt(0.002 / 86_400))
    assert e.high_bps == pytest.approx(4.02 + 1.645 * sd)
    assert e.low_bps == pytest.approx(4.02 - 1.645 * sd)
    assert e.worst_case_bps == pytest.approx(4.02 + 2.326 * sd)
    assert e.worst_case_bps == pytest.approx(7.509, abs=1e-3)


def test_seed_003_latency_penalty() -> None:
    assert impact.latency_bps(50.0, 0.1) == pytest.approx(0.5)  # (50 / 10) * 0.1


def test_seed_003_impact_is_the_case_sigma_33_bps() -> None:
    # seed 003 §4's sqrt(participation) * 5 bps is Y * sigma_daily = 5 bps: 0.15 * 33.3
    assert impact.impact_bps(1.0, 4.0, 5.0 / 0.15, 0.15) == pytest.approx(2.5)


def test_no_volume_prices_on_the_depth_and_no_depth_no_price() -> None:
    assert impact.impact_bps(1.0, 0.0, 200.0, 0.15) == math.inf
    assert impact.impact_bps(0.0, 0.0, 200.0, 0.15) == 0.0
    # seed 003 §4 on the depth: 5 bps * sqrt(1 / 4) = 2.5 bps
    assert impact.impact_of(1.0, 0.0, 200.0, 0.15, 4.0, 5.0) == pytest.approx(2.5)
    none = impact.estimate(1.0, 1.0, 0.0, 200.0, 0.15, 2.0, 0.1, depth=0.0, fallback_bps=5.0)
    assert none.worst_case_bps == math.inf


@settings(max_examples=300, deadline=None)
@given(
    st.floats(1e-6, 1e6),
    st.floats(1e-3, 1e9),
    st.floats(1.0, 2_000.0),
    st.floats(0.01, 2.0),
    st.floats(0.0, 100.0),
)
def test_estimate_is_ordered_and_impact_is_square_root(
    qty: float, volume: float, sigma: float, coeff: float, h: float
) -> None:
    e = impact.estimate(h, qty, volume, sigma, coeff, 5.0, 0.1)
    assert e.low_bps <= e.expected_bps <= e.high_bps <= e.worst_case_bps
    four = impact.impact_bps(4 * qty, volume, sigma, coeff)
    assert four == pytest.approx(2 * e.impact_bps, rel=1e-9)
    # the inverse: the largest size within the impact found gives that impact back
    q = impact.max_qty_within_bps(e.impact_bps, volume, sigma, coeff)
    assert impact.impact_bps(q, volume, sigma, coeff) == pytest.approx(e.impact_bps, rel=1e-9)


def test_daily_stats_by_hand() -> None:
    # three quotes an hour apart, 100 traded each hour: 100 / 3600 s * 86400 = 2400 a day;
    # half-life far longer than the sample: the weights are ~1
    st_ = impact.DailyStats(half_life_s=1e12, prior_daily_vol_bps=100.0, prior_s=0.0)
    for i, mid in enumerate((100.0, 101.0, 100.0)):
        st_.add(i * 3_600 * S + 1, mid, 100.0)
    assert st_.daily_volume == pytest.approx(2_400.0)
    r2 = math.log(1.01) ** 2 + math.log(100 / 101) ** 2
    assert st_.sigma_daily_bps == pytest.approx(math.sqrt(r2 / 7_200 * 86_400) * 1e4)


def test_daily_stats_prior_holds_until_data_outweighs_it() -> None:
    # one 3 % jump in the first second does not read as a day of such jumps
    st_ = impact.DailyStats(half_life_s=432_000.0, prior_daily_vol_bps=300.0, prior_s=3_600.0)
    st_.add(1 * S, 100.0, 1.0)
    st_.add(2 * S, 103.0, 1.0)
    expected = math.sqrt((math.log(1.03) ** 2 + (0.03**2 / 86_400) * 3_600) / 3_601 * 86_400)
    assert st_.sigma_daily_bps == pytest.approx(expected * 1e4)
    assert st_.sigma_daily_bps < 1_500  # 1-s scaling would say 3 % * sqrt(86400) = 88,000 bps


def test_daily_stats_counts_a_weekend_as_one_day() -> None:
    st_ = impact.DailyStats(half_life_s=1e12, prior_daily_vol_bps=100.0, prior_s=0.0)
    st_.add(1, 100.0, 0.0)
    st_.add(3 * 86_400 * S, 100.0, 1_000.0)  # Friday -> Monday: one trading day
    assert st_.daily_volume == pytest.approx(1_000.0)
