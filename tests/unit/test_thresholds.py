"""Seed 001 §5's uncertainty band, confidence levels and dynamic threshold
(services/calibration/thresholds.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.calibration.thresholds import (
    LEVEL_ACTIONS,
    ConfidenceLevel,
    DynamicThreshold,
    SizeMultipliers,
    ThresholdParams,
    ensemble_interval,
    level_of,
    reason_code,
    size_multiplier,
)

L = ConfidenceLevel


@pytest.mark.parametrize(
    ("confidence", "level"),
    [
        (0.0, L.VERY_LOW),
        (0.3999, L.VERY_LOW),
        (0.40, L.LOW),
        (0.5499, L.LOW),
        (0.55, L.MEDIUM),
        (0.6999, L.MEDIUM),
        (0.70, L.HIGH),
        (0.8499, L.HIGH),
        (0.85, L.VERY_HIGH),
        (1.0, L.VERY_HIGH),
    ],
)
def test_level_table_at_every_boundary(confidence: float, level: ConfidenceLevel) -> None:
    assert level_of(confidence) is level


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf])
def test_level_rejects_non_probabilities(bad: float) -> None:
    with pytest.raises(ValueError):
        level_of(bad)


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_level_is_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert level_of(lo) <= level_of(hi)


def test_sizes_reasons_and_actions() -> None:
    sizes = [size_multiplier(level) for level in L]
    assert sizes == [0.0, 0.0, 0.5, 1.0, 1.25]  # LOW is paper only: no live size
    assert size_multiplier(L.MEDIUM, SizeMultipliers(medium=0.3)) == 0.3
    assert reason_code(L.LOW) == "confidence:LOW"
    assert reason_code(L.VERY_HIGH) == "confidence:VERY_HIGH"
    assert LEVEL_ACTIONS[L.VERY_LOW] == "do not trade"
    assert LEVEL_ACTIONS[L.LOW] == "paper trade only"
    with pytest.raises(ValueError):
        SizeMultipliers(high=-1.0)


# --- ensemble band ---------------------------------------------------------------------------


def test_ensemble_interval_hand_worked() -> None:
    # w = (1, 1, 2) / 4; mean = 0.25*10 + 0.25*20 + 0.5*40 = 27.5 bps
    # var = 0.25*17.5^2 + 0.25*7.5^2 + 0.5*12.5^2 = 168.75; spread = 12.990381 bps
    mean, low, high, spread = ensemble_interval([10.0, 20.0, 40.0], [1.0, 1.0, 2.0])
    assert mean == pytest.approx(27.5)
    assert spread == pytest.approx(math.sqrt(168.75))
    assert low == pytest.approx(27.5 - 1.645 * 12.990381, abs=1e-6)  # 6.1308
    assert high == pytest.approx(27.5 + 1.645 * 12.990381, abs=1e-6)  # 48.8692


@given(
    st.lists(
        st.tuples(st.floats(-200.0, 200.0), st.floats(0.01, 10.0)),
        min_size=1,
        max_size=8,
    ),
    st.floats(0.0, 3.0),
)
def test_ensemble_interval_matches_numpy_weighted_formulas(
    rows: list[tuple[float, float]], z: float
) -> None:
    e = np.asarray([x for x, _ in rows])
    w = np.asarray([y for _, y in rows])
    mean, low, high, spread = ensemble_interval(list(e), list(w), z)
    np_mean = np.average(e, weights=w)
    np_std = math.sqrt(np.cov(e, aweights=w, ddof=0)) if e.size > 1 else 0.0
    assert mean == pytest.approx(np_mean, abs=1e-9)
    assert spread == pytest.approx(np_std, abs=1e-6)
    assert low == pytest.approx(mean - z * spread) and high == pytest.approx(mean + z * spread)
    assert low <= mean <= high


def test_ensemble_interval_rejects_bad_input() -> None:
    for edges, weights in (
        ([], []),
        ([1.0], [1.0, 2.0]),
        ([1.0], [0.0]),
        ([1.0, 2.0], [1.0, -1.0]),
    ):
        with pytest.raises(ValueError):
            ensemble_interval(edges, weights)
    assert ensemble_interval([7.0], [3.0]) == (7.0, 7.0, 7.0, 0.0)  # one engine: no spread


# --- dynamic threshold -----------------------------------------------------------------------

DT = DynamicThreshold()
regimes = st.sampled_from(["TREND", "RANGE", "PANIC", "ILLIQUID", "UNKNOWN"])
vols = st.floats(0.0, 50.0)
accs = st.floats(0.0, 1.0)


def test_threshold_hand_worked() -> None:
    assert DT.threshold("TREND", 2.0) == pytest.approx(0.70)  # the seed's base
    # RANGE +0.05; vol 3 %: 0.05 * (3/2 - 1) = +0.025; accuracy 0.65: 0.5 * 0.05 = +0.025
    assert DT.threshold("RANGE", 3.0, 0.65) == pytest.approx(0.80)
    assert not DT.passes(0.72, "RANGE", 3.0, 0.65) and DT.passes(0.80, "RANGE", 3.0, 0.65)
    # calm TREND with a good record: 0.70 - 0.025 - 0.05 = 0.625
    assert DT.threshold("TREND", 1.0, 0.90) == pytest.approx(0.625)
    # PANIC at 8 %, hit rate 0.5: 0.70 + 0.10 + 0.10 (clipped) + 0.10 = 1.0 -> ceiling 0.90
    assert DT.threshold("PANIC", 8.0, 0.50) == 0.90
    assert DT.threshold("NEW_REGIME", 2.0) == pytest.approx(0.80)  # unknown: the cautious offset
    floor_params = ThresholdParams(base=0.50, vol_term_min=-0.2, acc_term_min=-0.2)
    assert DynamicThreshold(floor_params).threshold("TREND", 0.0, 1.0) == 0.55


@given(regimes, vols, vols, st.one_of(st.none(), accs))
def test_threshold_non_decreasing_in_volatility(
    regime: str, v1: float, v2: float, acc: float | None
) -> None:
    lo, hi = sorted((v1, v2))
    assert DT.threshold(regime, lo, acc) <= DT.threshold(regime, hi, acc)


@given(regimes, vols, accs, accs)
def test_threshold_non_increasing_in_recent_accuracy(
    regime: str, vol: float, a1: float, a2: float
) -> None:
    lo, hi = sorted((a1, a2))
    assert DT.threshold(regime, vol, hi) <= DT.threshold(regime, vol, lo)


@given(regimes, vols, st.one_of(st.none(), accs), st.floats(0.0, 1.0))
def test_threshold_within_floor_and_ceiling(
    regime: str, vol: float, acc: float | None, confidence: float
) -> None:
    p = DT.params
    t = DT.threshold(regime, vol, acc)
    assert p.floor <= t <= p.ceiling
    assert DT.passes(confidence, regime, vol, acc) == (confidence >= t)


def test_threshold_params_validated_and_frozen() -> None:
    with pytest.raises(ValueError):
        ThresholdParams(vol_slope=-0.1)
    with pytest.raises(ValueError):
        ThresholdParams(floor=0.9, ceiling=0.8)
    with pytest.raises(ValueError):
        DT.threshold("TREND", math.nan)
    with pytest.raises(ValueError):
        DT.threshold("TREND", 2.0, 1.5)
    with pytest.raises(TypeError):
        DT.params.regime_offsets["TREND"] = 0.5  # type: ignore[index]
    assert not DT.passes(math.nan, "TREND", 2.0)
