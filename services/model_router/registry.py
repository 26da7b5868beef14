"""The model registry: every model by name, with its metadata and running stats.

``CATALOGUE`` maps a model id to its class (what the rules schema checks ids against);
a ``ModelRegistry`` holds one live instance of each (models keep per-symbol state) and
counts, per model: calls, waits (no opinion), errors, time spent, and, once outcomes
are known, hits and the Brier score per horizon (which consensus turns into reliability).

A model that raises is counted and treated as waiting: one bad model never stops
the router.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from services.model_router.engines import BreakoutEngine, RangeEngine, TrendEngine
from services.model_router.flow_engines import LeaderEngine, SweepEngine, TapeEngine
from services.model_router.meta_learner import LogisticMetaLearner
from services.model_router.models import (
    AlphaModel,
    BookPressure,
    MaMomentum,
    ModelBase,
    Prediction,
    RandomBaseline,
)
from shared.messages import Features

log = logging.getLogger("edgebus.model_router")

CATALOGUE: dict[str, type[Any]] = {
    cls.id: cls
    for cls in (
        BookPressure,
        MaMomentum,
        LogisticMetaLearner,
        TrendEngine,
        RangeEngine,
        BreakoutEngine,
        TapeEngine,
        SweepEngine,
        LeaderEngine,
        RandomBaseline,
    )
}

BRIER_PRIOR = 0.25  # the score of a coin flip (p = 0.5): what an unscored model gets
BRIER_WINDOW = 200  # running mean over the first 200 outcomes, then an EWMA of that span


@dataclass(slots=True)
class Scorecard:
    """Outcomes of one model at one horizon: Brier score and hit rate.

    Brier term of one outcome: ``(p - o)^2`` with ``p`` the probability the model gave
    to its own direction and ``o = 1`` if the mid moved that way, else 0.
    """

    scored: int = 0
    hits: int = 0
    brier: float = BRIER_PRIOR
    last_outcome_ns: int = 0

    def add(self, p_dir: float, hit: bool, ts_ns: int) -> None:
        self.scored += 1
        self.hits += int(hit)
        term = (p_dir - (1.0 if hit else 0.0)) ** 2
        self.brier += (term - self.brier) / min(self.scored, BRIER_WINDOW)
        self.last_outcome_ns = ts_ns


@dataclass(slots=True)
class ModelStats:
    calls: int = 0
    waits: int = 0
    errors: int = 0
    latency_ns: int = 0
    scores: dict[str, Scorecard] = field(default_factory=dict)  # horizon -> scorecard

    @property
    def hits(self) -> int:
        return sum(s.hits for s in self.scores.values())

    @property
    def scored(self) -> int:
        return sum(s.scored for s in self.scores.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "waits": self.waits,
            "errors": self.errors,
            "mean_latency_us": round(self.latency_ns / self.calls / 1e3, 3) if self.calls else 0.0,
            "hit_rate": round(self.hits / self.scored, 4) if self.scored else None,
            "brier": {h: round(s.brier, 4) for h, s in self.scores.items()},
        }


class ModelRegistry:
    """One instance per model of the catalogue, with stats; no I/O."""

    def __init__(self) -> None:
        self.models: dict[str, AlphaModel] = {mid: cls() for mid, cls in CATALOGUE.items()}
        self.stats: dict[str, ModelStats] = {mid: ModelStats() for mid in CATALOGUE}

    def metadata(self) -> dict[str, dict[str, Any]]:
        return {
            mid: {
                "version": m.version,
                "description": m.description,
                "horizons": sorted(m.horizons) if m.horizons is not None else "any",
                "regimes": sorted(m.regimes),
                **self.stats[mid].as_dict(),
            }
            for mid, m in self.models.items()
        }

    def observes(self, model_id: str) -> bool:
        """Whether the model keeps state in ``observe`` (ModelBase's does nothing, and
        calling it for every message of every routed model would cost more than the
        models that do something)."""
        method = getattr(self.models[model_id], "observe", None)
        return getattr(method, "__func__", None) is not ModelBase.observe

    def observe(self, model_id: str, f: Features) -> None:
        try:
            self.models[model_id].observe(f)
        except Exception:
            self._failed(model_id, "observe")

    def predict(self, model_id: str, f: Features, horizon: str) -> Prediction | None:
        """The model's prediction, timed and counted; None when waiting or failing."""
        st = self.stats[model_id]
        t0 = time.perf_counter_ns()
        try:
            pred = self.models[model_id].predict(f, horizon)
        except Exception:
            self._failed(model_id, "predict")
            pred = None
        st.latency_ns += time.perf_counter_ns() - t0
        st.calls += 1
        if pred is None:
            st.waits += 1
        return pred

    def learn(self, model_id: str, f: Features, horizon: str, realised_bps: float) -> None:
        try:
            self.models[model_id].learn(f, horizon, realised_bps)
        except Exception:
            self._failed(model_id, "learn")

    def scorecard(self, model_id: str, horizon: str) -> Scorecard:
        scores = self.stats[model_id].scores
        card = scores.get(horizon)
        if card is None:
            card = scores[horizon] = Scorecard()
        return card

    def _failed(self, model_id: str, what: str) -> None:
        st = self.stats[model_id]
        st.errors += 1
        if st.errors <= 3 or st.errors % 1000 == 0:  # loud, but not a log flood
            log.exception("model %s %s failed (%d errors so far)", model_id, what, st.errors)
