"""model_router: ``features`` in; ``signals`` (one consensus signal per matched rule and
horizon, plus shadow models') and ``router.switches`` out. Wiring only: the logic is
``router.Router``.

Every features entry is observed as it comes and decided on unless its symbol was
decided on less than ``decide_interval_ms`` of event time before (``Router.handle``):
what the router writes never depends on how entries were batched."""

from __future__ import annotations

from typing import Any, ClassVar

from services.model_router import metrics as mm
from services.model_router.config import RouterRules
from services.model_router.router import CONSENSUS_ID, Router
from services.model_router.routing import Route
from shared.bus import Entry, Outbox
from shared.messages import FEATURES, Features, RouterSwitch, Signal
from shared.service import Service


class ModelRouter(Service[RouterRules]):
    name: ClassVar[str] = "model_router"
    inputs: ClassVar[tuple[str, ...]] = (FEATURES,)
    upstreams: ClassVar[dict[str, str]] = {FEATURES: "feature_bus"}

    def __init__(self, config: RouterRules | None = None) -> None:
        super().__init__(config)
        self.router = Router(self.config)
        # model -> calls, waits, errors, scored outcomes: what Prometheus has seen
        self._exported: dict[str, tuple[int, int, int, int]] = {}
        self._consensus_signals = mm.Bound(mm.CONSENSUS_SIGNALS)
        self._consensus_score = mm.Bound(mm.CONSENSUS_SCORE)
        self._shadow_signals = mm.Bound(mm.SHADOW_SIGNALS)
        self._switches = mm.Bound(mm.SWITCHES)
        self._model_brier = mm.Bound(mm.MODEL_BRIER)
        self._model_metrics = {
            model_id: mm.ModelChildren.bind(model_id) for model_id in self.router.registry.stats
        }

    def on_config(self, config: RouterRules) -> None:
        # Called between batches; the config was validated, so compiling cannot fail on it.
        self.router.reload(config)

    def routes(self, symbol: str) -> tuple[Route, ...]:
        """The cached routing decision for ``symbol`` (what ``make bench`` times as route_us)."""
        return self.router.table.routes(symbol)

    def on_message(self, entry: Entry, out: Outbox) -> None:
        f = entry.message
        assert isinstance(f, Features)
        for msg in self.router.handle(f):
            out.emit(msg)
            if isinstance(msg, Signal):
                if msg.model_id == CONSENSUS_ID:
                    gate = "open" if msg.confidence > 0 else "shut"
                    self._consensus_signals(msg.horizon, gate).inc()
                    if msg.consensus_score is not None:
                        self._consensus_score(msg.symbol, msg.horizon).set(msg.consensus_score)
                elif msg.shadow:
                    self._shadow_signals(msg.model_id).inc()
            elif isinstance(msg, RouterSwitch):
                self._switches(msg.symbol).inc()

    def on_batch_end(self, out: Outbox) -> None:
        self._export_model_stats()

    def on_committed(self) -> None:
        self.router.commit()

    async def on_batch_failed(self) -> None:
        # The failed batch's entries stay pending and come again: decide nothing on them now.
        self.router.discard()

    def _export_model_stats(self) -> None:
        """Copy the registry's plain counters into Prometheus (once per batch, and only
        what changed: the scorecards move only when outcomes mature)."""
        exported = self._exported
        for model_id, st in self.router.registry.stats.items():
            calls, waits, errors, scored = exported.get(model_id, (0, 0, 0, 0))
            now_scored = st.scored
            if st.calls == calls and st.errors == errors and now_scored == scored:
                continue
            bound = self._model_metrics[model_id]
            if st.calls != calls:
                bound.calls.inc(st.calls - calls)
            if st.waits != waits:
                bound.waits.inc(st.waits - waits)
            if st.errors != errors:
                bound.errors.inc(st.errors - errors)
            if st.calls:
                bound.latency_us.set(st.latency_ns / st.calls / 1e3)
            if now_scored != scored:
                bound.hit_rate.set(st.hits / now_scored)
                for horizon, card in st.scores.items():
                    self._model_brier(model_id, horizon).set(card.brier)
            exported[model_id] = (st.calls, st.waits, st.errors, now_scored)
        mm.OUTCOMES_PENDING.set(self.router.outcomes.pending())

    def health_details(self) -> dict[str, Any]:
        return {
            "rules": len(self.config.rules),
            "rules_loads": self.router.table.epoch,
            **self.router.stats(),
            "models": self.router.registry.metadata(),
        }


SERVICE = ModelRouter
