"""Online logistic meta-learner (issue 4): learns how far to trust the seed signals.

Inputs (all dimensionless, roughly in [-1, 1]):
``x = [1, book_pressure_edge / 25, ma_momentum_edge / 50, clip(return_bps / vol_bps, +-3) / 3]``,
i.e. the two seed models' opinions (seed 004) and the last return in volatility units.

Model: ``q = P(mid up over the horizon) = sigmoid(w . x)``, one weight vector per horizon.
Training: one stochastic-gradient step per realised outcome at that horizon, with
``y = 1`` when the mid rose, ``0`` when it fell (an unchanged mid teaches nothing):
``w <- w + lr * ((y - q) * x - l2 * w)``, the gradient of the L2-regularised log-loss.
Output: ``edge_bps = edge_scale_bps * (2q - 1)``, ``confidence = |2q - 1|``; it waits
(no vote) until ``min_updates`` outcomes were learned for that horizon.
"""

from __future__ import annotations

import math

import numpy as np

from services.model_router.models import ModelBase, Prediction, book_pressure_edge, ma_momentum_edge
from shared.messages import Features

N_INPUTS = 4


def sigmoid(z: float) -> float:
    """1 / (1 + e^-z), without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def inputs(f: Features) -> np.ndarray:
    """The meta-learner's input vector x for one features message."""
    bp_edge, _ = book_pressure_edge(f.bid_size, f.ask_size)
    mom_edge, _ = ma_momentum_edge(f.ema_short, f.ema_long)
    vol_bps = f.volatility_pct * 100.0
    z = f.return_bps / vol_bps if vol_bps > 0 else 0.0
    return np.array([1.0, bp_edge / 25.0, mom_edge / 50.0, max(-3.0, min(3.0, z)) / 3.0])


def sgd_step(w: np.ndarray, x: np.ndarray, y: float, lr: float, l2: float) -> np.ndarray:
    """One gradient step on the L2-regularised log-loss: w + lr * ((y - q) x - l2 w)."""
    q = sigmoid(float(w @ x))
    return w + lr * ((y - q) * x - l2 * w)


class LogisticMetaLearner(ModelBase):
    id = "meta_logistic"
    description = "online logistic regression over the seed signals, trained on outcomes"
    regimes = frozenset({"TREND", "RANGE"})

    def __init__(
        self,
        lr: float = 0.05,
        l2: float = 1e-4,
        min_updates: int = 50,
        edge_scale_bps: float = 20.0,
    ) -> None:
        self.lr, self.l2 = lr, l2
        self.min_updates = min_updates
        self.edge_scale_bps = edge_scale_bps
        self.weights: dict[str, np.ndarray] = {}  # horizon -> w
        self.updates: dict[str, int] = {}  # horizon -> outcomes learned

    def probability_up(self, f: Features, horizon: str) -> float | None:
        w = self.weights.get(horizon)
        if w is None or self.updates.get(horizon, 0) < self.min_updates:
            return None
        return sigmoid(float(w @ inputs(f)))

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        q = self.probability_up(f, horizon)
        if q is None:
            return None  # still learning
        return self.edge_scale_bps * (2.0 * q - 1.0), abs(2.0 * q - 1.0)

    def learn(self, f: Features, horizon: str, realised_bps: float) -> None:
        if realised_bps == 0:
            return
        w = self.weights.get(horizon)
        if w is None:
            w = np.zeros(N_INPUTS)
        self.weights[horizon] = sgd_step(
            w, inputs(f), 1.0 if realised_bps > 0 else 0.0, self.lr, self.l2
        )
        self.updates[horizon] = self.updates.get(horizon, 0) + 1
