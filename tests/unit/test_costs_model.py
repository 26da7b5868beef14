"""risk's cost model (services/risk_harmoniser/costs.py): seed 003 §4 with seed 001 §6's
impact, by hand and as properties; the slippage refusal through the engine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.execution.config import VenueFees
from services.risk_harmoniser.config import CostParams, RiskParams
from services.risk_harmoniser.costs import (
    round_trip_fees_bps,
    slippage_estimate,
    slippage_too_high,
    total_cost_bps,
)
from services.risk_harmoniser.engine import RiskEngine
from shared.control import TradingState
from shared.messages import Signal

A_SHARE = VenueFees(
    taker_fee_bps=2.5,
    maker_fee_bps=2.5,
    min_commission_usd=5.0,
    sell_tax_bps=10.0,
    transfer_fee_bps=0.2,
    exchange_fee_bps=0.487,
)


def test_total_cost_by_hand() -> None:
    # spread 2 -> 1; 10k of a day's 1M at sigma 200 bps, Y 0.15: 0.15 * 200 * 0.1 = 3;
    # latency (5 / 10) * 0.1 = 0.05; one way 4.05, twice 8.1; taker 4 each way = 8;
    # funding 1 bps per 8 h for 4 h = 0.5 -> 16.6 bps
    total = total_cost_bps(
        2.0, 10_000, 1e6, 200.0, 0.15, 0.0, 5.0, 4.0, 4.0, 1.0, 4 * 3600.0, 5.0, 0.1, True
    )
    assert total == pytest.approx(16.6)
    one_way = total_cost_bps(
        2.0, 10_000, 1e6, 200.0, 0.15, 0.0, 5.0, 4.0, 4.0, 0.0, 0.0, 5.0, 0.1, False
    )
    assert one_way == pytest.approx(1 + 3 + 0.05 + 4)
    # no volume yet: seed 003 §4 on the depth, 5 * sqrt(10k / 40k) = 2.5 bps
    depth = total_cost_bps(
        0.0, 10_000, 0.0, 200.0, 0.15, 40_000.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, False
    )
    assert depth == pytest.approx(2.5)


def test_a_share_round_trip_fees_by_hand() -> None:
    # buy 10,000: commission 2.5 bps = 2.50 < the 5 minimum -> 5 bps; + 0.687 transfer and
    # exchange = 5.687; the exit sells: 5 + 0.687 + stamp duty 10 = 15.687 bps
    entry, exit_ = round_trip_fees_bps(A_SHARE, 10_000.0, "buy", "taker")
    assert entry == pytest.approx(5.687) and exit_ == pytest.approx(15.687)
    # above the minimum (400,000: commission 100 > 5) the rate is the rate
    entry, _ = round_trip_fees_bps(A_SHARE, 400_000.0, "buy", "taker")
    assert entry == pytest.approx(2.5 + 0.687)


def test_defaults_are_the_seeds() -> None:
    c = CostParams()
    assert (c.impact_coeff, c.safety_margin_bps, c.latency_bps_per_10ms) == (0.15, 3.0, 0.1)
    assert (c.max_slippage_bps, c.max_worst_case_bps, c.impact_fallback_bps) == (20, 30, 5)
    fees = c.venues[c.venue]
    assert 4 <= fees.taker_fee_bps <= 5 and 2 <= fees.maker_fee_bps <= 5
    assert c.funding_bps_per_hour.crypto == pytest.approx(c.funding_rate_bps_per_8h.crypto / 8)


def test_old_keys_are_read_with_a_deprecation(caplog: pytest.LogCaptureFixture) -> None:
    p = RiskParams(
        costs={  # type: ignore[arg-type]
            "impact_coeff_bps": 0.0,
            "participation_window_s": 300,
            "funding_bps_per_hour": {"crypto": 0.1, "stocks": 0.0},
        }
    )
    assert p.costs.impact_coeff == 0.0  # 0 keeps its meaning: no impact
    assert p.costs.funding_rate_bps_per_8h.crypto == pytest.approx(0.8)
    assert "impact_coeff_bps is deprecated" in caplog.text
    assert "participation_window_s is deprecated" in caplog.text


@settings(max_examples=300, deadline=None)
@given(
    st.floats(1.0, 1e7),
    st.floats(1.0, 4.0),
    st.floats(1e4, 1e11),
    st.floats(10.0, 2_000.0),
    st.floats(0.0, 50.0),
)
def test_cost_grows_with_size_and_round_trip_costs_more(
    order_usd: float, k: float, volume_usd: float, sigma_bps: float, spread_bps: float
) -> None:
    def cost(usd: float, rt: bool) -> float:
        return total_cost_bps(
            spread_bps,
            usd,
            volume_usd,
            sigma_bps,
            0.15,
            0.0,
            5.0,
            4.0,
            4.0,
            1.0,
            60.0,
            5.0,
            0.1,
            rt,
        )

    assert cost(order_usd * k, True) >= cost(order_usd, True) - 1e-9
    assert cost(order_usd, True) >= cost(order_usd, False)
    est = slippage_estimate(spread_bps, order_usd, volume_usd, sigma_bps, 0.0, CostParams())
    # the estimate's expected cost is the one-way cost without fees and funding
    one_way = total_cost_bps(
        spread_bps,
        order_usd,
        volume_usd,
        sigma_bps,
        0.15,
        0.0,
        5.0,
        0.0,
        0.0,
        0.0,
        0.0,
        5.0,
        0.1,
        False,
    )
    assert est.expected_bps == pytest.approx(one_way)
    assert est.low_bps <= est.expected_bps <= est.high_bps <= est.worst_case_bps


def test_refused_above_20_bps_or_a_worst_case_above_30() -> None:
    c = CostParams()
    ok = slippage_estimate(2.0, 10_000, 1e8, 300.0, 0.0, c)  # impact 0.45 bps
    assert not slippage_too_high(ok, c)
    # 0.15 * 300 * sqrt(0.25) = 22.5 bps expected: above 20
    assert slippage_too_high(slippage_estimate(0.0, 25_000, 1e5, 300.0, 0.0, c), c)
    # 0.15 * 300 * sqrt(0.09) = 13.5 expected, worst 13.5 * (1 + 2.326 * 0.5) = 29.2: passes;
    # sqrt(0.1) -> 14.2 expected, worst 30.8: refused on the worst case alone
    assert not slippage_too_high(slippage_estimate(0.0, 9_000, 1e5, 300.0, 0.0, c), c)
    worst = slippage_estimate(0.0, 10_000, 1e5, 300.0, 0.0, c)
    assert worst.expected_bps < 20 < 30 < worst.worst_case_bps and slippage_too_high(worst, c)


def test_the_engine_refuses_an_order_whose_slippage_is_too_high() -> None:
    # a thin book with no traded volume yet: the impact is on the depth (seed 003 §4),
    # 5 * sqrt(order / one side's depth); a strong edge clears the cost gate but the
    # order's slippage estimate is above 20 bps: slippage_too_high
    t0 = 1_700_000_000 * 10**9
    eng = RiskEngine(RiskParams(costs={"round_trip": False}))  # type: ignore[arg-type]
    eng.on_tick("BTC-USD", 64_999.0, 65_001.0, 0.0005, 0.0005, None, t0, TradingState())
    sig = Signal(
        symbol="BTC-USD",
        ts_ns=t0,
        model_id="consensus",
        horizon="1m",
        edge_bps=400.0,
        confidence=1.0,
        mid=65_000.0,
    )
    d = eng.on_signal(sig, TradingState())
    assert d is not None and (d.action, d.reason) == ("reject", "slippage_too_high")
