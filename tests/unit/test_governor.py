"""The win-rate governor (services/calibration/governor.py, docs/governors.md).

The plant: a gate whose passed trades win with p_win(th) = 0.3 + 0.7 th, so a stricter gate
wins more; scalp's 72 % needs th* = 0.6, runner's 95 % th* = 0.9286, and 99 % would need
0.9857, above the 0.95 bound (unreachable).
"""

from __future__ import annotations

import numpy as np
import pytest

from services.calibration.governor import (
    DEFAULT_BOUNDS,
    RUNNER_TARGET,
    SCALP_TARGET,
    WinRateGovernor,
    for_book,
)


def p_win(threshold: float) -> float:
    return 0.3 + 0.7 * threshold


def run(gov: WinRateGovernor, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n trades through the plant: (wins, thresholds after each trade)."""
    wins = np.empty(n, dtype=bool)
    ths = np.empty(n)
    for i in range(n):
        wins[i] = rng.random() < p_win(gov.threshold)
        ths[i] = gov.update(bool(wins[i]))
    return wins, ths


@pytest.mark.parametrize(
    ("book", "target", "th_star"),
    [("scalp", SCALP_TARGET, 0.6), ("runner", RUNNER_TARGET, (0.95 - 0.3) / 0.7)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_converges_to_the_target_with_bounded_oscillation(
    book: str, target: float, th_star: float, seed: int
) -> None:
    n = 10_000
    gov = for_book(book)
    wins, ths = run(gov, n, np.random.default_rng(seed))
    # realised win rate of the second half within 2 points of the target
    assert abs(wins[n // 2 :].mean() - target) < 0.02
    tail = ths[-n // 5 :]  # the last 20 % of steps
    assert abs(tail.mean() - th_star) < 0.03
    # stable: measured 0.017-0.029 (scalp) and 0.010-0.012 (runner) on seeds 0-2
    assert tail.std() < 0.035
    assert DEFAULT_BOUNDS[0] <= tail.min() and tail.max() <= DEFAULT_BOUNDS[1]


def test_a_lower_win_rate_raises_the_threshold() -> None:
    gov = for_book("scalp")
    start = gov.threshold
    for _ in range(10):
        gov.update(False)
    assert gov.threshold > start
    loosened = for_book("scalp", base_threshold=0.6)
    for _ in range(10):
        loosened.update(True)
    assert loosened.threshold < 0.6


def test_unreachable_target_sits_on_the_bound_without_windup_and_recovers() -> None:
    rng = np.random.default_rng(7)
    gov = for_book("runner", target=0.99)
    _, ths = run(gov, 1500, rng)
    integral_mid = gov.integral
    _, ths = run(gov, 1500, rng)
    hi = DEFAULT_BOUNDS[1]
    assert (ths[-500:] >= hi - 1e-9).mean() > 0.9  # pinned at the bound
    assert ths[-500:].min() > hi - 0.01
    # no windup: the integral stopped growing once the output saturated (conditional
    # integration), holding no more than the push the bound needs, far inside its clamp
    assert abs(gov.integral - integral_mid) < 5.0
    assert gov.ki * gov.integral <= hi - gov.base_threshold + 0.02
    assert gov.integral < 0.6 * gov.integral_limit
    # the target becomes reachable (95 %): back near th* = 0.9286 within a few hundred trades
    gov.set_target(RUNNER_TARGET)
    _, ths = run(gov, 400, rng)
    first_below = int(np.argmax(ths < hi - 0.005))
    assert ths[first_below] < hi - 0.005 and first_below < 100
    assert abs(ths[-100:].mean() - (0.95 - 0.3) / 0.7) < 0.03


def test_output_and_step_are_limited() -> None:
    gov = WinRateGovernor(target=0.9, kp=5.0, ki=0.0, kd=0.0, base_threshold=0.5, damping=0.02)
    prev = gov.threshold
    for _ in range(200):
        th = gov.update(False)
        assert abs(th - prev) <= 0.02 + 1e-12
        assert DEFAULT_BOUNDS[0] <= th <= DEFAULT_BOUNDS[1]
        prev = th
    assert gov.threshold == pytest.approx(DEFAULT_BOUNDS[1])


def test_hand_worked_first_step() -> None:
    # window 9: a = 0.2; w = 0.72 + 0.2 (0 - 0.72) = 0.576, e = 0.144, I = 0.144,
    # D = -(0.576 - 0.72) = 0.144; u = 0.45 + 0.3 e + 0.005 I + 0.3 D = 0.53712;
    # the step is limited to 0.01: th = 0.46
    gov = WinRateGovernor(target=0.72, window=9)
    assert gov.update(False) == pytest.approx(0.46)
    assert gov.win_rate == pytest.approx(0.576)
    assert gov.integral == pytest.approx(0.144)
    free = WinRateGovernor(target=0.72, window=9, damping=1.0)
    assert free.update(False) == pytest.approx(0.45 + 0.3 * 0.144 + 0.005 * 0.144 + 0.3 * 0.144)


def test_round_trips_through_a_dict() -> None:
    rng = np.random.default_rng(3)
    a = for_book("scalp")
    run(a, 300, rng)
    b = WinRateGovernor.from_dict(a.to_dict())
    assert b.to_dict() == a.to_dict()
    outcomes = [bool(x) for x in rng.random(200) < 0.7]
    assert [a.update(x) for x in outcomes] == [b.update(x) for x in outcomes]


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="bounds"):
        WinRateGovernor(bounds=(0.9, 0.5))
    with pytest.raises(ValueError, match="target"):
        WinRateGovernor(target=1.0)
    with pytest.raises(ValueError, match="base_threshold"):
        WinRateGovernor(base_threshold=0.2)
    with pytest.raises(ValueError, match="book"):
        for_book("swing")
