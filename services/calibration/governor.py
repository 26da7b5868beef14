"""Win-rate governor: a PID controller that moves a gate threshold to hold a book's win rate
(seed 002, ``win_rate_governor.py``: "PID feedback controller for target WR", "separate
governors for scalp (72%) and runner (95%)", "smooth adjustments with damping").

The threshold is the minimum score a trade needs to pass the gate (e.g. the calibrated
confidence or the meta-label probability, in [0, 1]): a higher threshold is a stricter gate.
Each closed trade's outcome x_t (1 a win, 0 a loss) updates, in this order:

    w_t   = w_{t-1} + a (x_t - w_{t-1}),   a = 2 / (window + 1),  w_0 = target
                                                     (EWMA win rate, pandas' span convention)
    e_t   = target - w_t                             (> 0: winning too little -> stricter)
    I_t   = clip(I_{t-1} + e_t, -I_max, I_max),       I_max = (hi - lo) / ki   (anti-windup 1)
            and I_t = I_{t-1} when the last output sat on a bound and e_t pushes further
            out (conditional integration, anti-windup 2)
    D_t   = -(w_t - w_{t-1})                         (derivative on measurement: no kick
                                                      when the target changes)
    u_t   = clip(base + kp e_t + ki I_t + kd D_t, lo, hi)
    th_t  = th_{t-1} + clip(u_t - th_{t-1}, -damping, damping)      (per-trade step limit)

Åström & Hägglund (2006), *Advanced PID Control*, §3.4-3.5 (derivative on the process
output, integrator windup and its clamping). Pure and deterministic: no clock, no I/O; the
state round-trips through ``to_dict`` / ``from_dict``.
"""

from __future__ import annotations

import math
from typing import Any

SCALP_TARGET = 0.72  # seed 002: "Separate governors for scalp (72%) and runner (95%)"
RUNNER_TARGET = 0.95
# Seed 002's gate profiles: meta-label threshold 0.45 (scalp, loose) and 0.65 (runner, strict)
SCALP_BASE_THRESHOLD = 0.45
RUNNER_BASE_THRESHOLD = 0.65
# lo 0.40: seed 001 §5's LOW lower bound (below it: "do not trade"); hi 0.95: a gate that
# still lets the best signals through
DEFAULT_BOUNDS = (0.40, 0.95)


class WinRateGovernor:
    """A gate threshold driven by the recent win rate toward ``target`` (formulas above).

    Defaults (ours, tuned on the synthetic stream of tests/unit/test_governor.py, where
    p_win moves 0.7 per unit of threshold): kp 0.3, ki 0.005 per trade, kd 0.3, window 200
    trades, damping 0.01 per trade (a move across the whole band takes >= 55 trades)."""

    def __init__(
        self,
        target: float = SCALP_TARGET,
        kp: float = 0.3,
        ki: float = 0.005,
        kd: float = 0.3,
        bounds: tuple[float, float] = DEFAULT_BOUNDS,
        base_threshold: float = SCALP_BASE_THRESHOLD,
        window: int = 200,
        damping: float = 0.01,
    ) -> None:
        lo, hi = float(bounds[0]), float(bounds[1])
        if not (0.0 <= lo < hi <= 1.0):
            raise ValueError(f"bounds must satisfy 0 <= lo < hi <= 1, not {bounds!r}")
        for name, value in (("kp", kp), ("ki", ki), ("kd", kd)):
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, not {value!r}")
        if not (lo <= base_threshold <= hi):
            raise ValueError(f"base_threshold {base_threshold!r} is outside bounds {bounds!r}")
        if int(window) < 1:
            raise ValueError(f"window must be >= 1 trade, not {window!r}")
        if not (math.isfinite(damping) and damping > 0.0):
            raise ValueError(f"damping (the max step per trade) must be > 0, not {damping!r}")
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.bounds = (lo, hi)
        self.base_threshold = float(base_threshold)
        self.window = int(window)
        self.damping = float(damping)
        self.alpha = 2.0 / (self.window + 1.0)
        self._target = 0.0
        self.set_target(target)
        self.win_rate = self._target  # no evidence yet: no error
        self.integral = 0.0
        self.threshold = self.base_threshold
        self.trades = 0

    @property
    def target(self) -> float:
        return self._target

    def set_target(self, target: float) -> None:
        """A new target win rate in (0, 1); the integral keeps its state (no bump)."""
        if not (0.0 < target < 1.0):
            raise ValueError(f"target win rate must be in (0, 1), not {target!r}")
        self._target = float(target)

    @property
    def integral_limit(self) -> float:
        """I_max = (hi - lo) / ki: the integral alone can span the band, no further."""
        lo, hi = self.bounds
        return (hi - lo) / self.ki if self.ki > 0.0 else 0.0

    def update(self, win: bool) -> float:
        """One closed trade's outcome; returns the new threshold."""
        lo, hi = self.bounds
        prev_rate = self.win_rate
        self.win_rate = prev_rate + self.alpha * (float(bool(win)) - prev_rate)
        error = self._target - self.win_rate
        # conditional integration: a saturated output does not integrate further out
        saturated_out = (self.threshold >= hi and error > 0.0) or (
            self.threshold <= lo and error < 0.0
        )
        if self.ki > 0.0 and not saturated_out:
            limit = self.integral_limit
            self.integral = min(max(self.integral + error, -limit), limit)
        derivative = -(self.win_rate - prev_rate)
        raw = self.base_threshold + self.kp * error + self.ki * self.integral
        raw += self.kd * derivative
        wanted = min(max(raw, lo), hi)
        step = min(max(wanted - self.threshold, -self.damping), self.damping)
        self.threshold = min(max(self.threshold + step, lo), hi)
        self.trades += 1
        return self.threshold

    def passes(self, score: float) -> bool:
        """score >= threshold (False for NaN)."""
        return bool(score >= self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self._target,
            "kp": self.kp,
            "ki": self.ki,
            "kd": self.kd,
            "bounds": list(self.bounds),
            "base_threshold": self.base_threshold,
            "window": self.window,
            "damping": self.damping,
            "win_rate": self.win_rate,
            "integral": self.integral,
            "threshold": self.threshold,
            "trades": self.trades,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> WinRateGovernor:
        lo, hi = doc["bounds"]
        gov = cls(
            target=float(doc["target"]),
            kp=float(doc["kp"]),
            ki=float(doc["ki"]),
            kd=float(doc["kd"]),
            bounds=(float(lo), float(hi)),
            base_threshold=float(doc["base_threshold"]),
            window=int(doc["window"]),
            damping=float(doc["damping"]),
        )
        gov.win_rate = float(doc["win_rate"])
        gov.integral = float(doc["integral"])
        gov.threshold = min(max(float(doc["threshold"]), gov.bounds[0]), gov.bounds[1])
        gov.trades = int(doc["trades"])
        return gov


def for_book(book: str, **overrides: Any) -> WinRateGovernor:
    """Seed 002's governor of a book: ``"scalp"`` (target 0.72, base 0.45) or ``"runner"``
    (target 0.95, base 0.65); keyword overrides pass to the constructor."""
    if book == "scalp":
        params: dict[str, Any] = {"target": SCALP_TARGET, "base_threshold": SCALP_BASE_THRESHOLD}
    elif book == "runner":
        params = {"target": RUNNER_TARGET, "base_threshold": RUNNER_BASE_THRESHOLD}
    else:
        raise ValueError(f"book must be 'scalp' or 'runner', not {book!r}")
    params.update(overrides)
    return WinRateGovernor(**params)
