"""Conformal intervals (services/calibration/conformal.py): coverage over many seeds,
adaptive and Mondrian coverage, a MAPIE cross-check, properties and the runner gate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.calibration.conformal import (
    AdaptiveConformal,
    OnlineConformal,
    SplitConformal,
    conformal_quantile,
    conformal_rank,
    min_calibration_size,
    pessimistic_edge_bps,
    runner_gate,
)

ALPHA = 0.1
N_SEEDS = 300
N_TEST = 2000


def _expected_coverage(n: int, alpha: float) -> float:
    """E[coverage] = k / (n + 1) for continuous scores (Lei et al. 2018, Thm 2.2)."""
    return conformal_rank(n, alpha) / (n + 1)


def _beta_std(n: int, alpha: float) -> float:
    """Std of the coverage given a calibration set: Beta(k, n + 1 - k)."""
    k = conformal_rank(n, alpha)
    a, b = k, n + 1 - k
    return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def _assert_coverage(cov: np.ndarray, n_cal: int, alpha: float) -> None:
    """Mean over seeds >= 1 - alpha (up to 3 standard errors), at its exact expectation
    k / (n + 1), below 1 - alpha + 1 / (n + 1); per-seed spread as Beta + binomial predicts."""
    mean = float(cov.mean())
    se = float(cov.std(ddof=1)) / math.sqrt(cov.size)
    expected = _expected_coverage(n_cal, alpha)
    assert mean >= 1 - alpha - 3 * se
    assert abs(mean - expected) <= 3 * se
    assert mean <= 1 - alpha + 1 / (n_cal + 1) + 3 * se
    predicted_std = math.sqrt(_beta_std(n_cal, alpha) ** 2 + expected * (1 - expected) / N_TEST)
    assert 0.7 * predicted_std <= float(cov.std(ddof=1)) <= 1.3 * predicted_std
    assert float(np.quantile(cov, 0.05)) >= 1 - alpha - 3 * predicted_std


def _linear_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """predicted edges ~ N(5, 10) bps, realised = 0.8 * predicted + Student-t(4) * 6 bps."""
    predicted = rng.normal(5.0, 10.0, n)
    return predicted, 0.8 * predicted + 6.0 * rng.standard_t(4, n)


# --- split conformal ----------------------------------------------------------------------


@pytest.mark.parametrize("n_cal", [28, 100])
def test_split_coverage_over_seeds(n_cal: int) -> None:
    cov = np.empty(N_SEEDS)
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(seed)
        cp = SplitConformal(ALPHA).fit(*_linear_data(rng, n_cal))
        p, r = _linear_data(rng, N_TEST)
        low, high = cp.intervals(p)
        cov[seed] = np.mean((r >= low) & (r <= high))
    _assert_coverage(cov, n_cal, ALPHA)
    if n_cal == 28:  # k / (n + 1) = 27 / 29 = 0.931: above 1 - alpha with room
        assert cov.mean() >= 1 - ALPHA


def test_naive_quantile_undercovers_where_the_correction_matters() -> None:
    """The plain 90 % empirical quantile of 28 scores under-covers; the conformal one does not."""
    naive, conformal = np.empty(N_SEEDS), np.empty(N_SEEDS)
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(10_000 + seed)
        p_cal, r_cal = _linear_data(rng, 28)
        scores = np.abs(r_cal - p_cal)
        p, r = _linear_data(rng, N_TEST)
        naive[seed] = np.mean(np.abs(r - p) <= np.quantile(scores, 1 - ALPHA))
        conformal[seed] = np.mean(np.abs(r - p) <= conformal_quantile(scores, ALPHA))
    assert naive.mean() < 1 - ALPHA < conformal.mean()


def test_hand_computed_quantiles() -> None:
    scores = np.arange(1.0, 20.0)  # 1..19
    assert conformal_rank(19, 0.1) == 18  # ceil(20 * 0.9) = 18, not 19 from rounding
    assert conformal_quantile(scores, 0.1) == 18.0
    assert conformal_quantile(scores[:9], 0.1) == 9.0  # n = 9: k = ceil(9.0) = 9, the max
    assert conformal_quantile(scores[:8], 0.1) == math.inf  # n = 8 < 1 / alpha - 1
    assert min_calibration_size(0.1) == 9 and min_calibration_size(0.05) == 19
    cp = SplitConformal(0.1).fit([0.0] * 9, [-1.0, 2.0, -3.0, 4.0, -5.0, 6.0, -7.0, 8.0, -9.0])
    assert cp.quantile_bps == 9.0 and cp.interval(5.0) == (-4.0, 14.0)
    # the k-th order statistic: numpy's "lower" quantile at level k / n (MAPIE's formula)
    rng = np.random.default_rng(3)
    for n in (9, 10, 28, 57, 100, 501):
        s = rng.exponential(size=n)
        level = conformal_rank(n, 0.1) / n
        assert conformal_quantile(s, 0.1) == np.quantile(s, level, method="lower")
        assert conformal_quantile(s, 0.1) == np.quantile(s, level, method="inverted_cdf")


def test_unfitted_and_too_small_are_infinite() -> None:
    assert SplitConformal().interval(3.0) == (-math.inf, math.inf)
    assert SplitConformal(0.1).fit([1.0] * 5, [2.0] * 5).quantile_bps == math.inf
    with pytest.raises(ValueError):
        SplitConformal(0.0)
    with pytest.raises(ValueError):
        SplitConformal().fit([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        SplitConformal().fit([1.0, math.nan], [1.0, 2.0])


def test_matches_mapie_split_conformal_regressor() -> None:
    mapie_regression = pytest.importorskip("mapie.regression")
    from sklearn.base import BaseEstimator, RegressorMixin

    class Passthrough(RegressorMixin, BaseEstimator):  # the forecast is the prediction
        def fit(self, X: np.ndarray, y: np.ndarray) -> Passthrough:
            self.n_features_in_ = np.asarray(X).shape[1]
            self.fitted_ = True
            return self

        def predict(self, X: np.ndarray) -> np.ndarray:
            return np.asarray(X, dtype=np.float64)[:, 0]

    rng = np.random.default_rng(7)
    for n_cal in (50, 200, 999):
        p_cal, r_cal = _linear_data(rng, n_cal)
        p_test, _ = _linear_data(rng, 100)
        est = Passthrough().fit(p_cal[:, None], r_cal)
        mapie = mapie_regression.SplitConformalRegressor(
            est, confidence_level=1 - ALPHA, conformity_score="absolute", prefit=True
        )
        mapie.conformalize(p_cal[:, None], r_cal)
        _, pis = mapie.predict_interval(p_test[:, None])
        low, high = SplitConformal(ALPHA).fit(p_cal, r_cal).intervals(p_test)
        np.testing.assert_allclose(low, pis[:, 0, 0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(high, pis[:, 1, 0], rtol=0, atol=1e-9)


# --- adaptive (normalised) and Mondrian ----------------------------------------------------


def _hetero_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """sigma(x) = 0.5 + 9.5 x bps, x ~ U(0, 1); realised = predicted + sigma * N(0, 1)."""
    sigma = 0.5 + 9.5 * rng.uniform(size=n)
    predicted = rng.normal(3.0, 8.0, n)
    return predicted, predicted + sigma * rng.standard_normal(n), sigma


def test_adaptive_coverage_and_narrower_on_low_sigma() -> None:
    n_cal = 100
    cov, cov_low_sigma, split_cov_high = (np.empty(N_SEEDS) for _ in range(3))
    width_ratio = np.empty(N_SEEDS)
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(20_000 + seed)
        p_cal, r_cal, s_cal = _hetero_data(rng, n_cal)
        ac = AdaptiveConformal(ALPHA).fit(p_cal, r_cal, s_cal)
        sc = SplitConformal(ALPHA).fit(p_cal, r_cal)
        p, r, s = _hetero_data(rng, N_TEST)
        low, high = ac.intervals(p, s)
        hit = (r >= low) & (r <= high)
        calm = s < np.median(s)
        cov[seed] = hit.mean()
        cov_low_sigma[seed] = hit[calm].mean()
        width_ratio[seed] = np.mean(high[calm] - low[calm]) / (2 * sc.quantile_bps)
        split_cov_high[seed] = np.mean(np.abs(r - p)[~calm] <= sc.quantile_bps)
    _assert_coverage(cov, n_cal, ALPHA)
    # the normalised score is pivotal here, so the calm half is covered too
    assert cov_low_sigma.mean() >= 1 - ALPHA - 3 * cov_low_sigma.std() / math.sqrt(N_SEEDS)
    assert np.all(width_ratio < 1.0) and width_ratio.mean() < 0.6
    assert split_cov_high.mean() < 1 - ALPHA  # one width for all under-covers the wild half


def _grouped_data(
    rng: np.random.Generator, n_by_group: dict[str, int], scale: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-regime noise: realised = predicted + scale[regime] * N(0, 1)."""
    groups = [g for g, n in n_by_group.items() for _ in range(n)]
    s = np.asarray([scale[g] for g in groups])
    p = rng.normal(0.0, 10.0, len(groups))
    return p, p + s * rng.standard_normal(len(groups)), groups


def test_mondrian_per_group_coverage_and_fallback() -> None:
    scale = {"TREND": 2.0, "RANGE": 1.0, "PANIC": 12.0}
    size = {"TREND": 100, "RANGE": 100, "PANIC": 64}
    cov = {g: np.empty(N_SEEDS) for g in scale}
    pooled_panic = np.empty(N_SEEDS)
    for seed in range(N_SEEDS):
        rng = np.random.default_rng(30_000 + seed)
        p_cal, r_cal, g_cal = _grouped_data(rng, size, scale)
        mc = AdaptiveConformal(ALPHA, min_group_size=50).fit(p_cal, r_cal, 1.0, g_cal)
        p, r, g = _grouped_data(rng, {k: N_TEST // 3 for k in scale}, scale)
        low, high = mc.intervals(p, 1.0, g)
        hit = (r >= low) & (r <= high)
        garr = np.asarray(g)
        for k in scale:
            cov[k][seed] = hit[garr == k].mean()
        pooled_panic[seed] = np.mean(np.abs(r - p)[garr == "PANIC"] <= mc.pooled_quantile)
    for k in scale:
        m, se = cov[k].mean(), cov[k].std(ddof=1) / math.sqrt(N_SEEDS)
        assert m >= 1 - ALPHA - 3 * se
        assert abs(m - _expected_coverage(size[k], ALPHA)) <= 3 * se
    assert pooled_panic.mean() < 0.85  # the pooled quantile would not protect PANIC

    # a group below min_group_size (and an unseen one) falls back to the pooled quantile
    rng = np.random.default_rng(1)
    p_cal = rng.normal(size=120)
    r_cal = p_cal + rng.normal(size=120)
    groups = ["TREND"] * 100 + ["ILLIQUID"] * 20
    mc = AdaptiveConformal(ALPHA, min_group_size=50).fit(p_cal, r_cal, 1.0, groups)
    assert set(mc.group_quantiles) == {"TREND"} and mc.group_sizes["ILLIQUID"] == 20
    assert mc.quantile("ILLIQUID") == mc.quantile("NEVER") == mc.quantile(None)
    assert mc.quantile("TREND") == conformal_quantile(np.abs(r_cal - p_cal)[:100], ALPHA)


def test_adaptive_sigma_validation() -> None:
    with pytest.raises(ValueError):
        AdaptiveConformal().fit([1.0, 2.0], [1.0, 2.0], [1.0, 0.0])
    ac = AdaptiveConformal(sigma_floor=1.0).fit([0.0] * 20, [float(i) for i in range(20)], 0.0)
    assert ac.pooled_quantile == conformal_quantile(np.arange(20.0), ALPHA)
    assert ac.interval(0.0, sigma=0.0) == (-ac.pooled_quantile, ac.pooled_quantile)


# --- online ----------------------------------------------------------------------------------


def test_online_window_matches_batch_and_round_trips_json() -> None:
    rng = np.random.default_rng(5)
    oc = OnlineConformal(ALPHA, window=200, min_group_size=50)
    assert oc.interval(1.0) == (-math.inf, math.inf)
    p, r, s = _hetero_data(rng, 700)
    groups = [("PANIC" if i % 4 == 0 else "TREND") for i in range(700)]
    for i in range(700):
        oc.update(float(p[i]), float(r[i]), float(s[i]), groups[i])
    assert len(oc) == 200
    last = slice(500, 700)
    batch = AdaptiveConformal(ALPHA, min_group_size=50).fit(p[last], r[last], s[last], groups[last])
    assert oc.quantile("TREND") == batch.quantile("TREND")
    assert oc.quantile("PANIC") == batch.quantile("PANIC")
    assert oc.quantile() == batch.pooled_quantile
    assert oc.interval(2.0, 3.0, "PANIC") == batch.interval(2.0, 3.0, "PANIC")

    state = json.loads(json.dumps(oc.to_dict()))
    back = OnlineConformal.from_dict(state)
    assert back.to_dict() == oc.to_dict()
    assert back.interval(2.0, 3.0, "TREND") == oc.interval(2.0, 3.0, "TREND")
    with pytest.raises(ValueError):
        OnlineConformal.from_dict({**state, "groups": state["groups"][:-1]})


def test_online_coverage_on_exchangeable_stream() -> None:
    hits = []
    for seed in range(20):
        rng = np.random.default_rng(40_000 + seed)
        oc = OnlineConformal(ALPHA, window=500)
        p, r, s = _hetero_data(rng, 1000)
        for i in range(1000):
            if i >= 100:
                low, high = oc.interval(float(p[i]), float(s[i]))
                hits.append(low <= r[i] <= high)
            oc.update(float(p[i]), float(r[i]), float(s[i]))
    assert abs(np.mean(hits) - (1 - ALPHA)) < 0.01


# --- properties ------------------------------------------------------------------------------

edges = st.floats(-500.0, 500.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(edges, edges), min_size=0, max_size=60),
    edges,
    st.floats(0.01, 0.99),
    st.floats(0.01, 0.99),
)
def test_interval_contains_prediction_and_widens_as_alpha_falls(
    pairs: list[tuple[float, float]], p: float, a1: float, a2: float
) -> None:
    predicted = [x for x, _ in pairs]
    realised = [y for _, y in pairs]
    lo_alpha, hi_alpha = max(a1, a2), min(a1, a2)
    wide = SplitConformal(hi_alpha).fit(predicted, realised)
    narrow = SplitConformal(lo_alpha).fit(predicted, realised)
    for cp in (wide, narrow):
        low, high = cp.interval(p)
        assert low <= p <= high
    assert narrow.quantile_bps <= wide.quantile_bps


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(edges, edges, st.floats(0.1, 50.0)), min_size=10, max_size=60),
    edges,
    st.floats(0.1, 50.0),
    st.floats(0.01, 0.5),
)
def test_adaptive_interval_contains_prediction_and_scales_with_sigma(
    rows: list[tuple[float, float, float]], p: float, sigma: float, alpha: float
) -> None:
    ac = AdaptiveConformal(alpha).fit(*zip(*rows, strict=True))
    low, high = ac.interval(p, sigma)
    assert low <= p <= high
    low2, high2 = ac.interval(p, 2 * sigma)
    assert high2 - low2 >= high - low


# --- the runner gate ---------------------------------------------------------------------------


def test_pessimistic_edge_and_runner_gate() -> None:
    assert pessimistic_edge_bps(12.0, 9.0, 15.0) == 9.0  # long: the low end
    assert pessimistic_edge_bps(-12.0, -15.0, -9.0) == 9.0  # short: minus the high end
    assert pessimistic_edge_bps(0.0, -2.0, 3.0) == -3.0  # no direction: the worse side
    assert runner_gate(12.0, (9.0, 15.0), 8.0)  # 9 > 8 bps (seed 002's runner buffer)
    assert not runner_gate(12.0, (8.0, 16.0), 8.0)  # must beat, not equal
    assert runner_gate(-12.0, (-15.0, -9.0), 8.0)
    assert not runner_gate(-12.0, (-15.0, 1.0), 8.0)
    assert not runner_gate(50.0, (-math.inf, math.inf), 0.0)  # too few calibration points
    assert not runner_gate(math.nan, (math.nan, math.nan), 0.0)


@given(edges, st.floats(0.0, 100.0), st.floats(0.0, 50.0))
def test_gate_never_passes_when_interval_straddles_zero_less_cost(
    p: float, half: float, cost: float
) -> None:
    low, high = p - half, p + half
    if runner_gate(p, (low, high), cost):
        assert (low > cost) if p > 0 else (-high > cost)
        assert min(abs(low), abs(high)) > cost
        assert (low > 0 and high > 0) or (low < 0 and high < 0)  # the interval excludes 0
