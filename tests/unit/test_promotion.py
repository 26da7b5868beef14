"""Champion against challenger (seed 002, seed 003 §9): hand-built series for each criterion,
the p-values against scipy, the ES of the mean excess, the stage machine, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from services.validation import promotion as pr
from services.validation.promotion import PromotionParams, Stage

DAYS = 20
# champion: +20, -10, +20, -10, ... (max drawdown 10 bps); the challenger adds 15 +- 1
CHAMPION = np.array([20.0 if i % 2 == 0 else -10.0 for i in range(DAYS)])
WIGGLE = np.array([1.0 if i % 3 == 0 else -0.5 for i in range(DAYS)])


def _compare(
    challenger: np.ndarray,
    champion: np.ndarray = CHAMPION,
    *,
    trades: int = 60,
    hits: int = 35,
    params: PromotionParams = PromotionParams(),  # noqa: B008
) -> pr.Comparison:
    return pr.compare(
        challenger,
        champion,
        challenger_trades=trades,
        challenger_hits=hits,
        challenger_turnover=2.0,
        challenger_cost_bps=trades * 1.5,
        champion_trades=60,
        champion_hits=30,
        champion_turnover=2.0,
        champion_cost_bps=90.0,
        params=params,
    )


# --- the criteria on hand-built series ---------------------------------------------------


def test_steady_fifteen_bps_excess_is_promotable() -> None:
    c = _compare(CHAMPION + 15.0 + WIGGLE)
    assert c.passed == dict.fromkeys(pr.CRITERIA, True)
    assert c.promotable and c.reasons() == []
    assert c.days == DAYS and c.days_better_streak == DAYS
    assert c.mean_excess_bps_per_day == pytest.approx(15.0 + WIGGLE.mean())
    assert c.p_value < 1e-10 and c.es_bps > 10.0
    assert c.challenger.max_drawdown_bps == 0.0 and c.champion.max_drawdown_bps == 10.0
    assert c.worse == ()


def test_zero_mean_excess_is_not_promotable() -> None:
    excess = np.array([5.0 if i % 2 == 0 else -5.0 for i in range(DAYS)])
    c = _compare(CHAMPION + excess)
    assert not c.promotable
    assert c.p_value > 0.4
    assert not c.passed["excess"] and not c.passed["p_value"] and not c.passed["es"]
    reasons = c.reasons()
    assert any(r.startswith("p_value 0.5") and r.endswith(">= 0.05 (t)") for r in reasons)
    assert "excess 0.00 bps/day < 10" in reasons


def test_four_day_streak_fails_days_better() -> None:
    excess = np.full(DAYS, 20.0)
    excess[-5] = 0.0  # the 16th day is a tie (not better); the last 4 are better
    c = _compare(CHAMPION + excess)
    assert c.days_better_streak == 4
    assert not c.passed["days_better"]
    assert all(v for k, v in c.passed.items() if k != "days_better")
    assert c.reasons() == ["days_better streak 4 < 5"]


def test_forty_trades_fail_trades() -> None:
    c = _compare(CHAMPION + 15.0 + WIGGLE, trades=40, hits=24)
    assert not c.promotable
    assert c.reasons() == ["trades 40 < 50"]


def test_much_worse_drawdown_fails_no_worse() -> None:
    excess = np.full(DAYS, 30.0)
    excess[5] = -150.0  # one day loses 160 bps against the champion's -10
    c = _compare(CHAMPION + excess)
    assert c.mean_excess_bps_per_day == pytest.approx((19 * 30 - 150) / 20)
    assert "max_drawdown_bps" in c.worse
    assert not c.passed["no_worse"] and not c.promotable
    (reason,) = [r for r in c.reasons() if r.startswith("worse in")]
    assert "max_drawdown_bps (challenger 160 vs champion 10)" in reason


def test_worse_hit_rate_is_critical_and_turnover_is_not_by_default() -> None:
    c = _compare(CHAMPION + 15.0 + WIGGLE, hits=20)  # 20 / 60 < 30 / 60
    assert c.worse == ("hit_rate",)
    params = PromotionParams(critical=("turnover", "cost_per_trade_bps"))
    assert _compare(CHAMPION + 15.0 + WIGGLE, params=params).worse == ()


def test_bootstrap_test_is_seeded_and_promotes_the_same_series() -> None:
    params = PromotionParams(test="bootstrap", n_bootstrap=2000, seed=7)
    a = _compare(CHAMPION + 15.0 + WIGGLE, params=params)
    assert a == _compare(CHAMPION + 15.0 + WIGGLE, params=params)
    assert a.test == "bootstrap" and a.promotable
    assert a.p_value == pytest.approx(1 / 2001)


# --- metrics by hand ------------------------------------------------------------------------


def test_track_metrics_by_hand() -> None:
    r = [10.0, -20.0, 5.0, 15.0]
    bench = [0.0, 0.0, 5.0, 5.0]
    m = pr.track_metrics(
        r, trades=5, hits=3, turnover=1.2, cost_bps_total=10.0, benchmark_daily_bps=bench
    )
    # curve 0, 10, -10, -5, 10: the fall from 10 to -10 is 20 bps
    assert m.max_drawdown_bps == 20.0
    assert (m.days, m.pnl_bps, m.mean_daily_bps) == (4, 10.0, 2.5)
    assert m.hit_rate == pytest.approx(0.6) and m.cost_per_trade_bps == pytest.approx(2.0)
    std = math.sqrt(((7.5**2) + (22.5**2) + (2.5**2) + (12.5**2)) / 3)
    assert m.sharpe == pytest.approx(2.5 / std * math.sqrt(252))
    excess = np.array(r) - np.array(bench)
    assert m.information_ratio == pytest.approx(excess.mean() / excess.std(ddof=1) * math.sqrt(252))
    bare = pr.track_metrics(r, trades=0, hits=0, turnover=0.0, cost_bps_total=0.0)
    assert bare.information_ratio is None and bare.hit_rate is None
    assert bare.cost_per_trade_bps is None


def test_each_side_ir_is_against_the_other() -> None:
    c = _compare(CHAMPION + 15.0 + WIGGLE)
    assert c.challenger.information_ratio == pytest.approx(-c.champion.information_ratio)


def test_streak_by_hand() -> None:
    assert pr.days_better_streak(np.array([1.0, -1.0, 2.0, 3.0])) == 2
    assert pr.days_better_streak(np.array([1.0, 0.0])) == 0  # a tie is not better
    assert pr.days_better_streak(np.array([1.0, 2.0])) == 2


def test_expected_shortfall_by_hand() -> None:
    means = np.arange(20.0)[::-1].copy()
    assert pr.expected_shortfall_of_mean(means, 0.95) == 0.0  # the 1 smallest of 20
    assert pr.expected_shortfall_of_mean(means, 0.90) == 0.5  # the 2 smallest
    assert pr.expected_shortfall_of_mean(np.arange(2000.0), 0.95) == pytest.approx(49.5)


# --- against scipy ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 60),
    st.floats(-3.0, 3.0),
    st.floats(0.1, 50.0),
    st.integers(0, 2**31),
)
def test_t_p_value_matches_scipy_ttest_rel(n: int, shift: float, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    champ = rng.normal(0.0, 20.0, n)
    chal = champ + rng.normal(shift * scale / math.sqrt(n), scale, n)
    c = _compare(chal, champ)
    expected = stats.ttest_rel(chal, champ, alternative="greater").pvalue
    assert c.p_value == pytest.approx(expected, rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("df", [1, 2, 3, 7, 30, 250, 5000])
def test_student_t_sf_matches_scipy(df: int) -> None:
    for t in (-40.0, -5.0, -1.0, -1e-3, 0.0, 0.2, 1.0, 1.645, 3.0, 12.0, 60.0):
        assert pr.student_t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-10, abs=1e-300)


def test_bootstrap_agrees_with_scipy_basic_interval() -> None:
    # p < 0.05 (H0 centred) exactly when the basic one-sided 95 % interval's low end is > 0
    # (2 mean - q95 of the resampled means > 0); Monte Carlo noise is kept out by skipping
    # the p values near 0.05.
    params = PromotionParams(test="bootstrap", n_bootstrap=4000, seed=3)
    checked = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        champ = rng.normal(0.0, 20.0, 30)
        chal = champ + rng.normal(0.4 * (seed % 10), 10.0, 30)
        p = _compare(chal, champ, params=params).p_value
        if 0.03 < p < 0.07:
            continue
        ci = stats.bootstrap(
            (chal - champ,),
            np.mean,
            n_resamples=4000,
            method="basic",
            alternative="greater",
            confidence_level=0.95,
            random_state=np.random.default_rng(seed + 100),
        ).confidence_interval
        assert (p < 0.05) == (ci.low > 0), (seed, p, ci.low)
        checked += 1
    assert checked >= 30


def test_bootstrap_p_and_es_agree_with_the_normal_theory_on_a_long_series() -> None:
    rng = np.random.default_rng(11)
    n = 400
    excess = rng.normal(1.0, 10.0, n)
    means = pr.bootstrap_means(excess, 20_000, 0)
    se = excess.std(ddof=0) / math.sqrt(n)
    z = float(stats.norm.ppf(0.95))
    # ES of N(mean, se^2) at 95 %: mean - se * phi(z) / 0.05
    es_normal = excess.mean() - se * stats.norm.pdf(z) / 0.05
    assert pr.expected_shortfall_of_mean(means, 0.95) == pytest.approx(es_normal, abs=0.05 * se)
    p_boot = pr.bootstrap_p_value(excess, means)
    assert p_boot == pytest.approx(pr.paired_t_p_value(excess), abs=0.01)


# --- the stage machine ------------------------------------------------------------------


def test_shadow_to_canary_when_promotable() -> None:
    good = _compare(CHAMPION + 15.0 + WIGGLE)
    change = pr.next_stage("m1", Stage.SHADOW, good, 3)
    assert change is not None
    assert (change.model_id, change.from_stage, change.to_stage) == (
        "m1",
        Stage.SHADOW,
        Stage.CANARY,
    )
    assert "streak 20 >= 5" in change.reason and "trades 60 >= 50" in change.reason
    assert (
        pr.next_stage("m1", Stage.SHADOW, _compare(CHAMPION + 15.0, trades=10, hits=6), 3) is None
    )
    assert pr.next_stage("m1", Stage.SHADOW, None, 30) is None


def test_canary_waits_then_goes_live_on_no_harm() -> None:
    # a small positive excess over the canary days: not seed 002's bar, but no harm
    canary_days = CHAMPION[:5] + 2.0
    c = _compare(canary_days, CHAMPION[:5], trades=8, hits=5)
    assert not c.promotable and c.worse == ()
    assert pr.next_stage("m1", Stage.CANARY, c, 4) is None
    change = pr.next_stage("m1", Stage.CANARY, c, 5)
    assert change is not None and change.to_stage is Stage.LIVE
    assert "mean excess 2.00 bps/day >= 0" in change.reason


def test_canary_demoted_on_a_loss_or_a_worse_metric() -> None:
    losing = _compare(CHAMPION[:5] - 1.0, CHAMPION[:5], trades=8, hits=5)
    change = pr.next_stage("m1", Stage.CANARY, losing, 5)
    assert change is not None and change.to_stage is Stage.SHADOW
    assert "mean excess -1.00 bps/day < 0" in change.reason
    deep = CHAMPION[:6] + np.array([5.0, 5.0, -100.0, 60.0, 30.0, 30.0])
    worse = _compare(deep, CHAMPION[:6], trades=8, hits=5)
    assert worse.mean_excess_bps_per_day > 0 and "max_drawdown_bps" in worse.worse
    change = pr.next_stage("m1", Stage.CANARY, worse, 6)
    assert change is not None and change.to_stage is Stage.SHADOW
    assert "max_drawdown_bps" in change.reason


def test_live_never_changes_here() -> None:
    bad = _compare(CHAMPION - 50.0)
    assert pr.next_stage("m1", Stage.LIVE, bad, 100) is None
    assert pr.next_stage("m1", Stage.LIVE, None, 100) is None


def test_stage_weights() -> None:
    assert pr.stage_weight(Stage.SHADOW) == 0.0
    assert pr.stage_weight(Stage.CANARY) == 0.1
    assert pr.stage_weight(Stage.LIVE) == 1.0


# --- inputs ------------------------------------------------------------------------------


def test_misaligned_or_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="not aligned"):
        _compare(CHAMPION[:-1])
    with pytest.raises(ValueError):
        _compare(CHAMPION[:1], CHAMPION[:1])
    with pytest.raises(ValueError):
        _compare(np.full(DAYS, math.nan))
    with pytest.raises(ValueError):
        _compare(CHAMPION, trades=5, hits=6)
    with pytest.raises(ValueError, match="test must be one of"):
        PromotionParams(test="z")
    with pytest.raises(ValueError, match="critical names unknown"):
        PromotionParams(critical=("sortino",))


# --- properties --------------------------------------------------------------------------

series_st = st.lists(st.floats(-200.0, 200.0), min_size=2, max_size=40)


@settings(max_examples=80, deadline=None)
@given(series_st, st.data())
def test_swapping_sides_never_makes_both_promotable(a: list[float], data: st.DataObject) -> None:
    b = data.draw(st.lists(st.floats(-200.0, 200.0), min_size=len(a), max_size=len(a)))
    ab = pr.compare(
        a,
        b,
        challenger_trades=100,
        challenger_hits=50,
        challenger_turnover=1.0,
        challenger_cost_bps=0.0,
        champion_trades=100,
        champion_hits=50,
        champion_turnover=1.0,
        champion_cost_bps=0.0,
    )
    ba = pr.compare(
        b,
        a,
        challenger_trades=100,
        challenger_hits=50,
        challenger_turnover=1.0,
        challenger_cost_bps=0.0,
        champion_trades=100,
        champion_hits=50,
        champion_turnover=1.0,
        champion_cost_bps=0.0,
    )
    assert not (ab.promotable and ba.promotable)
    assert 0.0 <= ab.p_value <= 1.0 and 0.0 <= ba.p_value <= 1.0
    assert ab.mean_excess_bps_per_day == pytest.approx(-ba.mean_excess_bps_per_day, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(series_st, st.floats(0.1, 100.0))
def test_a_better_challenger_never_scores_worse(excess: list[float], lift: float) -> None:
    base = np.asarray(excess)
    champ = np.zeros(base.size)
    before = _compare(base, champ)
    after = _compare(base + lift, champ)
    assert after.p_value <= before.p_value + 1e-12
    assert after.days_better_streak >= before.days_better_streak
    assert after.es_bps >= before.es_bps - 1e-9
    assert after.mean_excess_bps_per_day >= before.mean_excess_bps_per_day


def test_docs_hand_worked_example() -> None:
    # docs/validation.md, "Champion against challenger": d = 12, 8, 15, 10, 5
    champ = np.array([20.0, -10.0, 30.0, 0.0, 10.0])
    chal = np.array([32.0, -2.0, 45.0, 10.0, 15.0])

    def run(chal: np.ndarray, trades: int = 60) -> pr.Comparison:
        return pr.compare(
            chal,
            champ,
            challenger_trades=trades,
            challenger_hits=33 * trades // 60,
            challenger_turnover=1.0,
            challenger_cost_bps=90.0,
            champion_trades=55,
            champion_hits=28,
            champion_turnover=1.0,
            champion_cost_bps=80.0,
        )

    c = run(chal)
    assert c.promotable
    assert c.mean_excess_bps_per_day == pytest.approx(10.0) and c.days_better_streak == 5
    assert c.p_value == pytest.approx(stats.t.sf(10 / math.sqrt(58 / 4 / 5), 4))
    assert c.p_value == pytest.approx(0.0021, abs=5e-5)
    assert c.es_bps == pytest.approx(6.95, abs=0.005)
    assert (c.challenger.max_drawdown_bps, c.champion.max_drawdown_bps) == (2.0, 10.0)
    assert c.challenger.sharpe == pytest.approx(17.1, abs=0.05)
    assert c.champion.sharpe == pytest.approx(10.0, abs=0.05)
    change = pr.next_stage("m", Stage.SHADOW, c, 5)
    assert change is not None
    assert change.reason == (
        "promotable: streak 5 >= 5, excess 10.00 >= 10 bps/day, es 6.95 bps > 0,"
        " p 0.0021 < 0.05 (t), trades 60 >= 50, no critical metric worse"
    )
    assert run(chal, trades=40).reasons() == ["trades 40 < 50"]
    last_tie = chal.copy()
    last_tie[-1] = champ[-1]
    assert run(last_tie).reasons() == ["days_better streak 0 < 5", "excess 9.00 bps/day < 10"]
