"""model_router: ``features`` in; ``signals`` (one consensus signal per matched rule and
horizon, plus shadow models') and ``router.switches`` out. Wiring only: the logic is
``router.Router``."""

from __future__ import annotations

from typing import Any, ClassVar

from services.model_router import metrics as mm
from services.model_router.config import RouterRules
from services.model_router.router import CONSENSUS_ID, Router
from services.model_router.routing import Route
from shared.bus import Entry, Outbox
from shared.config import ComponentConfig
from shared.messages import FEATURES, Features, RouterSwitch, Signal
from shared.service import Service


class ModelRouter(Service):
    name: ClassVar[str] = "model_router"
    inputs: ClassVar[tuple[str, ...]] = (FEATURES,)

    config: RouterRules

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self.router = Router(self.config)
        self._exported: dict[str, tuple[int, int, int]] = {}  # model -> calls, waits, errors

    def on_config(self, config: ComponentConfig) -> None:
        # Called between batches; the config was validated, so compiling cannot fail on it.
        assert isinstance(config, RouterRules)
        self.router.reload(config)
        self.config = config

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
                    mm.CONSENSUS_SIGNALS.labels(msg.horizon, gate).inc()
                    if msg.consensus_score is not None:
                        mm.CONSENSUS_SCORE.labels(msg.symbol, msg.horizon).set(msg.consensus_score)
                elif msg.shadow:
                    mm.SHADOW_SIGNALS.labels(msg.model_id).inc()
            elif isinstance(msg, RouterSwitch):
                mm.SWITCHES.labels(msg.symbol).inc()

    def on_batch_end(self, out: Outbox) -> None:
        registry = self.router.registry
        for model_id, st in registry.stats.items():
            calls, waits, errors = self._exported.get(model_id, (0, 0, 0))
            if st.calls == calls and st.errors == errors:
                continue
            mm.MODEL_CALLS.labels(model_id).inc(st.calls - calls)
            mm.MODEL_WAITS.labels(model_id).inc(st.waits - waits)
            mm.MODEL_ERRORS.labels(model_id).inc(st.errors - errors)
            self._exported[model_id] = (st.calls, st.waits, st.errors)
            if st.calls:
                mm.MODEL_LATENCY_US.labels(model_id).set(st.latency_ns / st.calls / 1e3)
            if st.scored:
                mm.MODEL_HIT_RATE.labels(model_id).set(st.hits / st.scored)
            for horizon, card in st.scores.items():
                mm.MODEL_BRIER.labels(model_id, horizon).set(card.brier)
        mm.OUTCOMES_PENDING.set(self.router.outcomes.pending())

    def health_details(self) -> dict[str, Any]:
        return {
            "rules": len(self.config.rules),
            "rules_loads": self.router.table.epoch,
            **self.router.stats(),
            "models": self.router.registry.metadata(),
        }


SERVICE = ModelRouter
