"""Trust index (seed 000 §2): the hand-worked examples of docs/validation.md, the record's
drawdown state, monotone properties and the vote weight."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.validation import trust as tr

accuracy_st = st.floats(0.0, 1.0)
days_st = st.floats(0.0, 400.0)
slope_st = st.floats(-100.0, 100.0)
sharpe_st = st.floats(-10.0, 10.0)
n_st = st.integers(0, 10_000)


# --- hand-worked ------------------------------------------------------------------------


def test_seed_example_by_hand() -> None:
    # seed 000 §2's inputs with 100 scored outcomes: acc = (75 + 10) / 120 = 0.70833, above
    # 0.65 so score 1; drawdown 0.5 ** 0.5 = 0.70711; recovery 0.5 + 0.5 * 0.02 / 10 = 0.501;
    # recent 0.5 + 0.5 * 0.15 / 2 = 0.5375.
    t = tr.trust_index(0.75, 5, 0.02, 0.15, 100)
    assert t.accuracy == pytest.approx(85 / 120)
    assert t.components == pytest.approx(
        {"accuracy": 1.0, "drawdown": 2**-0.5, "recovery": 0.501, "recent": 0.5375}
    )
    expected = 0.35 * 1.0 + 0.25 * 2**-0.5 + 0.15 * 0.501 + 0.25 * 0.5375
    assert t.trust_index == pytest.approx(expected)
    assert t.trust_index == pytest.approx(0.73630, abs=1e-5)
    assert t.recommendation == "INCREASE"
    # 1 + 0.5 * (0.73630 - 0.7) / 0.3
    assert t.capital_allocation == pytest.approx(1 + 0.5 * (expected - 0.7) / 0.3)
    assert t.capital_allocation == pytest.approx(1.0605, abs=1e-4)


def test_few_outcomes_are_shrunk_toward_a_coin_flip() -> None:
    # 3 of 3 right: (3 + 10) / 23 = 0.565, score (0.065) / 0.15 = 0.435
    t = tr.trust_index(1.0, 0, 0.0, 0.0, 3)
    assert t.accuracy == pytest.approx(13 / 23)
    assert t.components["accuracy"] == pytest.approx((13 / 23 - 0.5) / 0.15)
    assert tr.trust_index(1.0, 0, 0.0, 0.0, 0).components["accuracy"] == 0.0


def test_allocation_bands() -> None:
    p = tr.TrustParams()
    assert tr.allocation_and_recommendation(0.29, p) == (0.0, "SUSPEND")
    alloc, rec = tr.allocation_and_recommendation(0.4, p)
    assert (alloc, rec) == (pytest.approx(0.8), "REDUCE")
    assert tr.allocation_and_recommendation(0.5, p) == (1.0, "MAINTAIN")
    assert tr.allocation_and_recommendation(0.69, p) == (1.0, "MAINTAIN")
    assert tr.allocation_and_recommendation(0.7, p) == (1.0, "INCREASE")
    assert tr.allocation_and_recommendation(1.0, p) == (1.5, "INCREASE")


def test_a_bad_model_is_suspended_a_good_one_increased() -> None:
    bad = tr.trust_index(0.45, 60, -5.0, -2.0, 500)
    assert bad.trust_index < 0.3 and bad.recommendation == "SUSPEND"
    assert bad.capital_allocation == 0.0
    good = tr.trust_index(0.62, 0, 0.0, 2.5, 500)
    assert good.recommendation == "INCREASE" and good.capital_allocation > 1.0


def test_vote_weight_worked_example_and_no_validation() -> None:
    assert tr.vote_weight(0.7, 0.02) == pytest.approx(0.6 * 0.7 + 0.4 * 0.98)
    assert tr.vote_weight(0.7, 0.02) == pytest.approx(0.812)
    assert tr.vote_weight(0.1, None) == 1.0
    assert tr.vote_weight(0.0, 1.0) == 0.0
    assert tr.vote_weight(1.0, 0.0) == 1.0
    with pytest.raises(ValueError):
        tr.vote_weight(1.2, 0.1)
    with pytest.raises(ValueError):
        tr.vote_weight(0.5, -0.1)


# --- from a record ------------------------------------------------------------------------


def test_drawdown_state_by_hand() -> None:
    # curve 0, 10, 5, 0, 3, 5, 4, 8: peak 10 on day 1, 6 days under, trough 0 on day 3;
    # OLS of 0, 3, 5, 4, 8 on 0..4: sum((x - 2)(y - 4)) / 10 = 17 / 10
    assert tr.drawdown_state([10, -5, -5, 3, 2, -1, 4]) == (6, pytest.approx(1.7))
    assert tr.drawdown_state([1, 2, 3]) == (0, 0.0)
    assert tr.drawdown_state([]) == (0, 0.0)
    # back to the peak exactly counts as recovered
    assert tr.drawdown_state([5, -5, 5]) == (0, 0.0)
    # still falling: the trough is today, slope = today's PnL
    assert tr.drawdown_state([5, -2, -3]) == (2, pytest.approx(-3.0))
    # below zero from day 1: the peak is the start (0)
    assert tr.drawdown_state([-4, -1]) == (2, pytest.approx(-1.0))


def test_trust_from_record_by_hand() -> None:
    pnl = [10, -5, -5, 3, 2, -1, 4]
    t = tr.trust_from_record(pnl, hits=30, scored=50)
    sharpe = tr.annualised_sharpe(pnl, 5)
    mean = sum(pnl) / 7
    std = math.sqrt(sum((x - mean) ** 2 for x in pnl) / 6)
    assert sharpe == pytest.approx(mean / std * math.sqrt(252))
    direct = tr.trust_index(30 / 50, 6, 1.7, sharpe, 50)
    assert t.recovery_slope == pytest.approx(1.7)
    assert t.trust_index == pytest.approx(direct.trust_index)
    assert t.components == pytest.approx(direct.components)
    assert t.drawdown_duration_days == 6.0


def test_recent_sharpe_uses_the_last_days_and_needs_enough() -> None:
    p = tr.TrustParams(recent_days=3, min_recent_days=3)
    t = tr.trust_from_record([-50, -50, -50, 1, 2, 3], 0, 0, p)
    assert t.recent_performance == pytest.approx(2 / 1 * math.sqrt(252))
    assert tr.trust_from_record([1, 2, 3, 4], 0, 0).recent_performance == 0.0  # < 5 days
    assert tr.trust_from_record([], 0, 0).trust_index == pytest.approx(
        0.25 * 1 + 0.15 * 1 + 0.25 * 0.5
    )


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        tr.trust_index(1.1, 0, 0, 0, 1)
    with pytest.raises(ValueError):
        tr.trust_index(0.5, -1, 0, 0, 1)
    with pytest.raises(ValueError):
        tr.trust_index(0.5, 0, math.nan, 0, 1)
    with pytest.raises(ValueError):
        tr.trust_from_record([1.0], hits=3, scored=2)
    with pytest.raises(ValueError):
        tr.TrustParams(accuracy_full=0.5)
    with pytest.raises(ValueError):
        tr.TrustParams(maintain_from=0.2, suspend_below=0.3)


# --- properties ---------------------------------------------------------------------------


@given(accuracy_st, days_st, slope_st, sharpe_st, n_st)
def test_bounds(acc: float, days: float, slope: float, sharpe: float, n: int) -> None:
    t = tr.trust_index(acc, days, slope, sharpe, n)
    assert 0.0 <= t.trust_index <= 1.0
    assert 0.0 <= t.capital_allocation <= 1.5
    assert t.recommendation in tr.RECOMMENDATIONS
    assert all(0.0 <= s <= 1.0 for s in t.components.values())


@given(accuracy_st, accuracy_st, days_st, slope_st, sharpe_st, n_st)
def test_more_accuracy_never_lowers_trust(
    a: float, b: float, days: float, slope: float, sharpe: float, n: int
) -> None:
    lo, hi = sorted((a, b))
    assert (
        tr.trust_index(hi, days, slope, sharpe, n).trust_index
        >= tr.trust_index(lo, days, slope, sharpe, n).trust_index
    )


@given(accuracy_st, days_st, days_st, slope_st, sharpe_st, n_st)
def test_longer_drawdown_never_raises_trust(
    acc: float, d1: float, d2: float, slope: float, sharpe: float, n: int
) -> None:
    lo, hi = sorted((d1, d2))
    assert (
        tr.trust_index(acc, hi, slope, sharpe, n).trust_index
        <= tr.trust_index(acc, lo, slope, sharpe, n).trust_index
    )


@given(accuracy_st, days_st, slope_st, slope_st, sharpe_st, n_st)
def test_steeper_recovery_never_lowers_trust(
    acc: float, days: float, s1: float, s2: float, sharpe: float, n: int
) -> None:
    lo, hi = sorted((s1, s2))
    assert (
        tr.trust_index(acc, days, hi, sharpe, n).trust_index
        >= tr.trust_index(acc, days, lo, sharpe, n).trust_index
    )


@given(accuracy_st, days_st, slope_st, sharpe_st, sharpe_st, n_st)
def test_better_recent_sharpe_never_lowers_trust(
    acc: float, days: float, slope: float, r1: float, r2: float, n: int
) -> None:
    lo, hi = sorted((r1, r2))
    assert (
        tr.trust_index(acc, days, slope, hi, n).trust_index
        >= tr.trust_index(acc, days, slope, lo, n).trust_index
    )


@given(st.floats(0.5, 1.0), days_st, slope_st, sharpe_st, n_st, n_st)
def test_more_outcomes_at_a_good_accuracy_never_lower_trust(
    acc: float, days: float, slope: float, sharpe: float, n1: int, n2: int
) -> None:
    lo, hi = sorted((n1, n2))
    assert (
        tr.trust_index(acc, days, slope, sharpe, hi).trust_index
        >= tr.trust_index(acc, days, slope, sharpe, lo).trust_index - 1e-12
    )


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_allocation_is_monotone_in_trust(a: float, b: float) -> None:
    p = tr.TrustParams()
    lo, hi = sorted((a, b))
    order = {"SUSPEND": 0, "REDUCE": 1, "MAINTAIN": 2, "INCREASE": 3}
    alloc_lo, rec_lo = tr.allocation_and_recommendation(lo, p)
    alloc_hi, rec_hi = tr.allocation_and_recommendation(hi, p)
    assert alloc_hi >= alloc_lo
    assert order[rec_hi] >= order[rec_lo]


@settings(max_examples=50)
@given(
    st.lists(st.floats(-100, 100), max_size=60),
    st.integers(0, 200),
    st.integers(0, 200),
)
def test_record_is_deterministic_and_bounded(pnl: list[float], a: int, b: int) -> None:
    hits, scored = sorted((a, b))
    t1 = tr.trust_from_record(pnl, hits, scored)
    assert t1 == tr.trust_from_record(pnl, hits, scored)
    assert 0.0 <= t1.trust_index <= 1.0
    assert t1.drawdown_duration_days <= len(pnl)
    # a good day on top of a record at its high keeps the drawdown at 0
    if pnl and t1.drawdown_duration_days == 0:
        assert tr.trust_from_record([*pnl, 1.0], hits, scored).drawdown_duration_days == 0


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_vote_weight_monotone(trust: float, p1: float, p2: float) -> None:
    lo, hi = sorted((p1, p2))
    assert tr.vote_weight(trust, lo) >= tr.vote_weight(trust, hi)
    assert 0.0 <= tr.vote_weight(trust, lo) <= 1.0
