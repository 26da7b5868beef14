"""The alpha-model protocol and the two seed models (seed 004 formulas).

A model is a small class behind one protocol: an ``id``, metadata (``version``,
``description``), the horizons it serves, the regimes it is approved in by default,
``observe(features)`` (once per message, to keep per-symbol state),
``predict(features, horizon) -> (edge_bps, confidence) | None`` (None = "waiting": no
opinion yet, e.g. a warm-up window not full) and ``learn(features_then, horizon,
realised_bps)``, called once the outcome of a past prediction is known.

Seed 004 formulas, with units made explicit:

- order-book pressure: ``edge_bps = 25 * (bid_size - ask_size) / (bid_size + ask_size)``,
  so a one-sided book is worth 25 bps; ``confidence = |imbalance|``.
- MA momentum: ``edge_bps = 40 * gap_pct`` with ``gap_pct = 100 * (ma_short - ma_long) /
  ma_long``, clipped to +-50 bps; ``confidence = min(1, |gap_pct| / 0.25)``.
  The seed writes ``40 * (ma_short - ma_long) / ma_long``; read as a plain fraction a
  0.1 % gap would be worth 0.04 bps, far below any cost, so the ratio is read in
  percent (a 0.1 % gap -> 4 bps), which puts both seed models on the same 0-50 bps scale.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Protocol, get_args, runtime_checkable

from shared.messages import (
    Features,
    Regime,
    horizon_ns,  # noqa: F401  (re-exported: the router and tests use it)
)

Prediction = tuple[float, float]  # (edge_bps, confidence in [0, 1])

ALL_REGIMES: frozenset[str] = frozenset(get_args(Regime))


@runtime_checkable
class AlphaModel(Protocol):
    """What the router needs of a model."""

    id: str
    version: str
    description: str
    horizons: frozenset[str] | None  # None: any horizon
    regimes: frozenset[str]  # approved by default (the rules' regime matrix overrides)

    def observe(self, f: Features) -> None: ...

    def predict(self, f: Features, horizon: str) -> Prediction | None: ...

    def learn(self, f: Features, horizon: str, realised_bps: float) -> None: ...


class ModelBase:
    """Convenience base: metadata as class attributes, no learning."""

    id: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    horizons: ClassVar[frozenset[str] | None] = None
    regimes: ClassVar[frozenset[str]] = ALL_REGIMES

    def observe(self, f: Features) -> None:
        """Every features message of a symbol routed to this model, once, before predict."""

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        raise NotImplementedError

    def learn(self, f: Features, horizon: str, realised_bps: float) -> None:
        """Outcome of a past prediction (mid moved ``realised_bps`` over ``horizon``)."""


# ---- the seed models (pure functions, wrapped as models) ------------------------------


def book_pressure_edge(bid_size: float, ask_size: float) -> Prediction:
    """Seed 004: edge_bps = 25 * (bid_size - ask_size) / (bid_size + ask_size)."""
    depth = bid_size + ask_size
    if depth <= 0:
        return 0.0, 0.0
    imbalance = (bid_size - ask_size) / depth
    return 25.0 * imbalance, min(1.0, abs(imbalance))


def ma_momentum_edge(ma_short: float, ma_long: float) -> Prediction:
    """Seed 004: edge_bps = 40 * gap_pct, gap_pct = 100 * (ma_short - ma_long) / ma_long,
    clipped to +-50 bps (see the module docstring for the percent reading)."""
    if ma_long <= 0:
        return 0.0, 0.0
    gap_pct = (ma_short - ma_long) / ma_long * 100.0
    edge_bps = max(-50.0, min(50.0, 40.0 * gap_pct))
    return edge_bps, min(1.0, abs(gap_pct) / 0.25)


class BookPressure(ModelBase):
    id = "book_pressure"
    description = "order-book imbalance, 25 bps for a one-sided book (seed 004)"
    regimes = frozenset({"TREND", "RANGE", "PANIC"})

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        if f.bid_size + f.ask_size <= 0:
            return None  # no book: nothing to say
        return book_pressure_edge(f.bid_size, f.ask_size)


class MaMomentum(ModelBase):
    id = "ma_momentum"
    description = "short/long EMA gap, 4 bps per 0.1 % gap, +-50 bps (seed 004)"
    regimes = frozenset({"TREND"})

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        if f.ema_long <= 0:
            return None
        return ma_momentum_edge(f.ema_short, f.ema_long)


class RandomBaseline(ModelBase):
    """The null model: a direction drawn from a hash of (symbol, event time), no edge by
    construction. Run it in shadow as the control of the research layer: validation
    must find it insignificant and the daily review must never promote it."""

    id = "random_baseline"
    description = "the null model: a seeded coin flip per decision (a control, never an edge)"
    regimes = frozenset({"TREND", "RANGE"})
    EDGE_BPS: ClassVar[float] = 15.0

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        digest = hashlib.blake2b(f"{f.symbol}:{f.ts_ns}".encode(), digest_size=1).digest()
        return (self.EDGE_BPS if digest[0] & 1 else -self.EDGE_BPS), 0.5
