"""Consensus maths (seed 003 §1 as quoted in issue 4) against hand-worked examples and
properties: reliability, base weights, correlation penalty, S, the rolling-std gate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.model_router.consensus import (
    ScoreGate,
    Vote,
    VoteHistory,
    consensus,
    penalised_weights,
    reliability,
    solve,
)


def run(votes: list[Vote], corr: np.ndarray | None = None, lam: float = 1.0):  # type: ignore[no-untyped-def]
    return consensus(votes, corr, half_life_s=60.0, penalty_lambda=lam)


def test_one_engine_speaks_alone() -> None:
    # r = (1 - 0.2) * exp(0) = 0.8; w = 1; p = (1 + 0.6) / 2 = 0.8; S = 1 * (2*0.8 - 1) * (+1)
    c = run([Vote("book_pressure", 10.0, 0.6, 1.0, 0.2)])
    assert c.method == "single"
    assert c.weights == (1.0,)
    assert c.reliabilities == (pytest.approx(0.8),)
    assert c.probabilities == (pytest.approx(0.8),)
    assert c.score == pytest.approx(0.6)
    assert c.edge_bps == pytest.approx(10.0)


def test_one_short_engine_gives_a_negative_score() -> None:
    c = run([Vote("trend", -4.0, 0.25, 2.0, 0.1)])
    assert c.score == pytest.approx(-0.25)
    assert c.edge_bps == pytest.approx(-4.0)


def test_all_engines_waiting_means_no_opinion() -> None:
    c = run([])
    assert (c.score, c.edge_bps, c.weights, c.method) == (0.0, 0.0, (), "none")


def test_zero_reliability_engine_gets_no_weight() -> None:
    # A: Brier 1 -> r = 0 -> b = 0, left out of the penalty; B speaks alone.
    c = run([Vote("a", 20.0, 1.0, 1.0, 1.0), Vote("b", -5.0, 0.5, 1.0, 0.25)])
    assert c.reliabilities == (0.0, pytest.approx(0.75))
    assert c.weights == (0.0, 1.0)
    assert c.score == pytest.approx(-0.5)
    assert c.edge_bps == pytest.approx(-5.0)


def test_zero_reliability_everywhere_means_no_opinion() -> None:
    c = run([Vote("a", 20.0, 1.0, 1.0, 1.0), Vote("b", -5.0, 0.5, 0.0, 0.25)])
    assert (c.score, c.edge_bps, c.method) == (0.0, 0.0, "none")
    assert c.weights == (0.0, 0.0)


def test_reliability_halves_every_half_life() -> None:
    # (1 - 0.25) * exp(-ln2 * 60 / 60) = 0.75 / 2
    assert reliability(0.25, 60.0, 60.0) == pytest.approx(0.375)
    assert reliability(0.25, 120.0, 60.0) == pytest.approx(0.1875)
    assert reliability(0.0, 0.0, 60.0) == 1.0


def test_penalty_with_independent_engines_pulls_towards_equal_weights() -> None:
    # C = I, lambda = 1, b = (0.75, 0.25): A = 2I; A^-1 b = (0.375, 0.125), sum 0.5;
    # A^-1 1 = (0.5, 0.5), sum 1; nu = (1 - 0.5) / 1 = 0.5; w = (0.625, 0.375).
    w, method = penalised_weights([0.75, 0.25], np.eye(2).tolist(), 1.0)
    assert method == "penalised"
    assert w == [pytest.approx(0.625), pytest.approx(0.375)]


def test_singular_correlation_matrix_hand_worked() -> None:
    # Engines a and b perfectly correlated, c independent: C is singular (rank 2).
    # Equal base weights 1/3 (Brier 0.2 each, W = 1). lambda = 1: A = C + I,
    # A^-1 b = (1/9, 1/9, 1/6), sum 7/18; A^-1 1 = (1/3, 1/3, 1/2), sum 7/6;
    # nu = (1 - 7/18) / (7/6) = 11/21; w = (2/7, 2/7, 3/7): the correlated pair is one bet.
    corr = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.linalg.matrix_rank(corr) == 2
    votes = [
        Vote("a", 10.0, 0.5, 1.0, 0.2),
        Vote("b", 8.0, 0.5, 1.0, 0.2),
        Vote("c", -6.0, 0.2, 1.0, 0.2),
    ]
    c = run(votes, corr)
    assert c.method == "penalised"
    assert c.weights == (pytest.approx(2 / 7), pytest.approx(2 / 7), pytest.approx(3 / 7))
    # S = 2/7 * 0.5 + 2/7 * 0.5 - 3/7 * 0.2 = 0.2; edge = (20 + 16 - 18) / 7
    assert c.score == pytest.approx(0.2)
    assert c.edge_bps == pytest.approx(18 / 7)


def test_singular_matrix_without_pull_falls_back_to_base_weights() -> None:
    # lambda = 0 leaves A = C singular: the documented fallback is the base weights.
    corr = np.array([[1.0, 1.0], [1.0, 1.0]])
    votes = [Vote("a", 10.0, 0.5, 3.0, 0.0), Vote("b", -10.0, 0.5, 1.0, 0.0)]
    c = run(votes, corr, lam=0.0)
    assert c.method == "fallback"
    assert c.weights == (pytest.approx(0.75), pytest.approx(0.25))
    assert c.score == pytest.approx(0.75 * 0.5 - 0.25 * 0.5)


def test_solver_reports_singular_and_solves_regular_systems() -> None:
    assert solve([[1.0, 2.0], [2.0, 4.0]], [[1.0], [2.0]]) is None
    x = solve([[2.0, 1.0], [1.0, 3.0]], [[3.0], [5.0]])
    assert x is not None
    assert [r[0] for r in x] == [pytest.approx(0.8), pytest.approx(1.4)]


finite = st.floats(-50, 50, allow_nan=False)
unit = st.floats(0, 1, allow_nan=False)
vote_st = st.builds(
    Vote,
    st.sampled_from(["m"]),
    finite,
    unit,
    st.floats(0, 5, allow_nan=False),
    unit,
    st.floats(0, 600, allow_nan=False),
)


@given(st.lists(vote_st, min_size=1, max_size=6), st.floats(0, 10, allow_nan=False))
def test_weights_are_a_distribution_and_scores_are_bounded(votes: list[Vote], lam: float) -> None:
    votes = [
        Vote(f"m{i}", v.edge_bps, v.confidence, v.rule_weight, v.brier, v.age_s)
        for i, v in enumerate(votes)
    ]
    c = run(votes, None, lam)
    assert all(w >= 0 for w in c.weights)
    if c.method == "none":
        assert c.score == 0.0 and sum(c.weights) == 0.0
        return
    assert sum(c.weights) == pytest.approx(1.0)
    assert -1.0 - 1e-9 <= c.score <= 1.0 + 1e-9
    edges = [v.edge_bps for v in votes]
    assert min(edges) - 1e-9 <= c.edge_bps <= max(edges) + 1e-9
    for w, v, r in zip(c.weights, votes, c.reliabilities, strict=True):
        if v.rule_weight * r == 0:
            assert w == 0.0


def test_gate_stays_shut_until_min_samples_then_compares_with_previous_std() -> None:
    gate = ScoreGate(k=1.0, window=4, min_samples=2)
    assert gate.judge(0.1) == (False, math.inf)
    assert gate.judge(-0.1) == (False, math.inf)
    # previous (0.1, -0.1): std 0.1 -> 0.05 is inside
    passed, threshold = gate.judge(0.05)
    assert not passed and threshold == pytest.approx(0.1)
    # previous (0.1, -0.1, 0.05): mean 1/60, population std sqrt(0.0216667/3)
    passed, threshold = gate.judge(0.3)
    assert passed and threshold == pytest.approx(math.sqrt(0.065 / 9), rel=1e-6)


def test_gate_threshold_scales_with_k() -> None:
    gate = ScoreGate(k=3.0, window=100, min_samples=2)
    for s in (0.1, -0.1):
        gate.judge(s)
    passed, threshold = gate.judge(0.25)
    assert threshold == pytest.approx(0.3) and not passed


@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=400), st.integers(2, 50))
def test_gate_std_is_the_std_of_the_last_window_scores(scores: list[float], window: int) -> None:
    gate = ScoreGate(k=1.0, window=window, min_samples=2)
    for s in scores:
        gate.judge(s)
    # sqrt amplifies the rounding of the running sums near 0: 1e-6 is far below any S
    assert gate.std() == pytest.approx(float(np.std(scores[-window:])), abs=1e-6)


def test_vote_history_correlation() -> None:
    h = VoteHistory(["a", "b", "c", "d"], window=50, min_samples=10, refresh=1)
    assert h.corr(["a", "b"]) is None  # not enough rows yet
    for i in range(30):
        x = math.sin(i)
        h.add({"a": x, "b": 2 * x, "c": -x, "d": 0.5})  # d never varies
    c = h.corr(["a", "b", "c", "d"])
    assert c is not None
    assert c[0, 1] == pytest.approx(1.0)
    assert c[0, 2] == pytest.approx(-1.0)
    assert (c[3] == [0.0, 0.0, 0.0, 1.0]).all()  # a constant engine: uncorrelated
    # Singular (rank 2 among a, b, c) and still a usable input to consensus.
    votes = [Vote(m, 5.0, 0.5, 1.0, 0.25) for m in "abcd"]
    assert run(votes, c).method == "penalised"
