"""The seven daily metrics of seed 000 "Daily Metrics": hand-worked values, edges, and
properties (services/validation/daily_metrics.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.validation import daily_metrics as dm

DAY = 86_400 * 10**9


# --- 1. OOS Sharpe ----------------------------------------------------------------------


def test_oos_sharpe_mean_and_std_across_windows() -> None:
    # window A: r = (0.01, -0.01, 0.02), Sharpe/period = 2 / sqrt(21) (mean 0.02/3,
    # std 0.01*sqrt(7/3)); window B: r = (0.01, 0.03), mean 0.02, std sqrt(2)*0.01,
    # Sharpe/period = sqrt(2). P = 1.
    a = 2 / math.sqrt(21)
    b = math.sqrt(2)
    mean, std = dm.oos_sharpe([[0.01, -0.01, 0.02], [0.01, 0.03]], periods_per_year=1)
    assert mean == pytest.approx((a + b) / 2)
    assert std == pytest.approx(abs(a - b) / math.sqrt(2))  # ddof=1 of two values


def test_oos_sharpe_annualises_and_drops_windows_without_a_sharpe() -> None:
    mean, std = dm.oos_sharpe([[0.01, 0.03], [0.5], [0.01, 0.01, 0.01]], periods_per_year=4)
    assert mean == pytest.approx(math.sqrt(2) * 2)
    assert math.isnan(std)  # one window kept
    assert all(math.isnan(x) for x in dm.oos_sharpe([]))


# --- 2. Brier per regime ----------------------------------------------------------------


def test_brier_by_regime_hand_worked() -> None:
    rows = [("TREND", 0.8, True), ("TREND", 0.6, False), ("RANGE", 0.5, True)]
    out = dm.brier_by_regime(rows)
    assert list(out) == ["RANGE", "TREND"]
    assert out["TREND"].brier == pytest.approx((0.2**2 + 0.6**2) / 2)  # 0.2
    assert out["TREND"].n == 2
    assert out["RANGE"].brier == pytest.approx(0.25)


def test_brier_matches_the_textbook_formula_on_random_data() -> None:
    # sklearn is not a dependency: brier_score_loss(y, p) is mean((p - y)^2), computed here
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 500)
    y = rng.uniform(0, 1, 500) < p
    out = dm.brier_by_regime(("PANIC", float(pi), bool(yi)) for pi, yi in zip(p, y, strict=True))
    assert out["PANIC"].brier == pytest.approx(float(np.mean((p - y.astype(float)) ** 2)))


def test_brier_rejects_a_probability_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="outside"):
        dm.brier_by_regime([("TREND", 1.2, True)])
    assert dm.direction_probability(0.6) == pytest.approx(0.8)


# --- 3. consensus diversity -------------------------------------------------------------


def test_diversity_score_hand_worked() -> None:
    assert dm.diversity_score([5.0, 3.0], [0.5, 0.5]) == 0.0  # unanimous
    assert dm.diversity_score([5.0, -3.0], [0.5, 0.5]) == 1.0  # evenly split
    # w = (0.6, 0.3, 0.1), s = (+, -, +): 1 - |0.6 - 0.3 + 0.1| / 1 = 0.6
    assert dm.diversity_score([2.0, -1.0, 4.0], [0.6, 0.3, 0.1]) == pytest.approx(0.6)
    # a flat vote and a zero weight do not count
    assert dm.diversity_score([2.0, 0.0, -1.0], [0.5, 0.5, 0.0]) == 0.0
    assert math.isnan(dm.diversity_score([0.0], [1.0]))


def test_consensus_diversity_reads_signal_votes() -> None:
    decisions = [
        {"a": {"edge_bps": 4.0, "weight": 0.75}, "b": {"edge_bps": -2.0, "weight": 0.25}},
        {"a": {"edge_bps": 1.0}, "b": {"edge_bps": -1.0}},  # weight 1 each: D = 1
        {"a": {"edge_bps": 0.0, "weight": 1.0}},  # no direction: left out
    ]
    mean, n = dm.consensus_diversity(decisions)
    assert n == 2
    assert mean == pytest.approx((0.5 + 1.0) / 2)


@given(
    st.lists(
        st.tuples(st.floats(-50, 50), st.floats(0, 1)),
        min_size=1,
        max_size=8,
    )
)
def test_diversity_is_in_the_unit_interval(votes: list[tuple[float, float]]) -> None:
    d = dm.diversity_score([e for e, _ in votes], [w for _, w in votes])
    assert math.isnan(d) or -1e-12 <= d <= 1.0 + 1e-12


# --- 4. slippage error ------------------------------------------------------------------


def test_slippage_error_hand_worked() -> None:
    s = dm.slippage_error([2.0, 3.0, 1.0], [3.0, 1.0, 1.0])  # e = (1, -2, 0)
    assert s.n == 3
    assert s.bias_bps == pytest.approx(-1 / 3)
    assert s.mae_bps == pytest.approx(1.0)
    assert s.rmse_bps == pytest.approx(math.sqrt(5 / 3))
    assert s.predicted_mean_bps == pytest.approx(2.0)
    assert s.realised_mean_bps == pytest.approx(5 / 3)
    assert math.isnan(dm.slippage_error([], []).bias_bps)
    with pytest.raises(ValueError):
        dm.slippage_error([1.0], [1.0, 2.0])


# --- 5. exploration budget --------------------------------------------------------------


def test_exploration_budget() -> None:
    e = dm.exploration_budget(2_500.0, 10_000.0)
    assert e.used_pct == pytest.approx(25.0)
    assert math.isnan(dm.exploration_budget(0.0, 0.0).used_pct)
    with pytest.raises(ValueError):
        dm.exploration_budget(-1.0, 10.0)


def test_exploration_used_is_the_canaries_share_of_the_orders_risk() -> None:
    orders = [(1_000.0, {"champ": 0.8, "canary": 0.2}), (-500.0, {"canary": 1.0}), (300.0, {})]
    assert dm.exploration_used_usd(orders, ["canary"]) == pytest.approx(200.0 + 500.0)
    assert dm.exploration_used_usd(orders, []) == 0.0


# --- 6. early warning -------------------------------------------------------------------


def test_drawdown_starts_once_per_episode_at_the_threshold() -> None:
    equity = [
        (1, 100.0),
        (2, 97.0),  # 3 %
        (3, 94.0),  # 6 %: episode 1 starts here
        (4, 90.0),  # deeper, same episode
        (5, 101.0),  # new peak
        (6, 99.0),  # 1.98 %: shallow
        (7, 102.0),
        (8, 96.0),  # 5.88 %: episode 2
    ]
    assert dm.drawdown_starts(equity, 5.0) == [3, 8]
    assert dm.drawdown_starts([], 5.0) == []


def test_early_warning_precision_and_recall_hand_worked() -> None:
    # lead 10: warning 0 -> drawdown 5 (true); warning 20 -> nothing in [20, 30] (false);
    # warning 38 -> drawdown 40 (true); drawdown 60 has no warning in [50, 60].
    w = dm.early_warning([0, 20, 38], [5, 40, 60], lead_ns=10)
    assert (w.n_true_warnings, w.n_warnings) == (2, 3)
    assert (w.n_drawdowns_warned, w.n_drawdowns) == (2, 3)
    assert w.precision == pytest.approx(2 / 3)
    assert w.recall == pytest.approx(2 / 3)
    # a warning after the drawdown started does not count; the bounds are inclusive
    late = dm.early_warning([6], [5], lead_ns=10)
    assert late.precision == 0.0 and late.recall == 0.0
    edge = dm.early_warning([0], [10], lead_ns=10)
    assert edge.precision == 1.0 and edge.recall == 1.0
    empty = dm.early_warning([], [], lead_ns=10)
    assert math.isnan(empty.precision) and math.isnan(empty.recall)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 1000), max_size=20),
    st.lists(st.integers(0, 1000), max_size=20),
    st.integers(0, 200),
)
def test_precision_and_recall_are_in_the_unit_interval(
    warns: list[int], dds: list[int], lead: int
) -> None:
    w = dm.early_warning(warns, dds, lead)
    for x in (w.precision, w.recall):
        assert math.isnan(x) or 0.0 <= x <= 1.0
    assert math.isnan(w.precision) == (not warns)
    assert math.isnan(w.recall) == (not dds)


# --- 7. drawdown days saved -------------------------------------------------------------


def test_days_under_water_and_days_saved() -> None:
    without = [(0, 100.0), (DAY, 90.0), (2 * DAY, 95.0), (5 * DAY, 100.0), (6 * DAY, 100.0)]
    with_adv = [(0, 100.0), (DAY, 95.0), (2 * DAY, 100.0), (6 * DAY, 100.0)]
    # without: under water from day 1 to day 5 (marks at 1 and 2 held until the next) = 4
    assert dm.days_under_water(without) == pytest.approx(4.0)
    assert dm.days_under_water(with_adv) == pytest.approx(1.0)
    assert dm.drawdown_days_saved(with_adv, without) == pytest.approx(3.0)
    assert dm.days_under_water([(0, 1.0)]) == 0.0
    with pytest.raises(ValueError):
        dm.days_under_water([(DAY, 1.0), (0, 0.5)])


# --- the daily record -------------------------------------------------------------------


def test_daily_metrics_as_dict_is_flat_json_with_units() -> None:
    m = dm.daily_metrics(
        segment_returns=[[0.01, 0.03], [0.01, -0.01, 0.02]],
        periods_per_year=1,
        brier_rows=[("TREND", 0.8, True)],
        vote_decisions=[{"a": {"edge_bps": 1.0, "weight": 1.0}}],
        predicted_cost_bps=[1.0],
        realised_cost_bps=[2.0],
        exploration_used_usd=10.0,
        exploration_cap_usd=100.0,
        warnings_ts_ns=[0],
        equity=[(0, 100.0), (DAY, 90.0), (2 * DAY, 100.0)],
        drawdown_threshold_pct=5.0,
        warning_lead_ns=DAY,
    )
    d = m.as_dict()
    assert d["brier_TREND"] == pytest.approx(0.04)
    assert d["brier_TREND_n"] == 1
    assert d["consensus_diversity"] == 0.0
    assert d["slippage_bias_bps"] == pytest.approx(1.0)
    assert d["exploration_used_pct"] == pytest.approx(10.0)
    assert d["early_warning_precision"] == 1.0 and d["early_warning_recall"] == 1.0
    assert d["drawdown_saved_days"] is None  # no counterfactual given
    assert all(not isinstance(v, dict | list) for v in d.values())
    json.dumps(d, allow_nan=False)


def test_daily_metrics_of_nothing_is_all_null_not_zero() -> None:
    d = dm.daily_metrics().as_dict()
    assert d["oos_sharpe_mean"] is None
    assert d["slippage_rmse_bps"] is None
    assert d["early_warning_recall"] is None
    json.dumps(d, allow_nan=False)
