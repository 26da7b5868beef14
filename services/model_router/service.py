"""model_router: ``features`` in, one ``signals`` entry per routed model out."""

from __future__ import annotations

from typing import Any, ClassVar

from services.model_router.config import RouterRules, RoutingRule
from services.model_router.models import MODELS
from shared.bus import Entry, Outbox
from shared.config import ComponentConfig
from shared.messages import FEATURES, Features, Signal
from shared.service import Service


class ModelRouter(Service):
    name: ClassVar[str] = "model_router"
    inputs: ClassVar[tuple[str, ...]] = (FEATURES,)

    config: RouterRules

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self._routes: dict[str, tuple[RoutingRule, ...]] = {}
        self.signals_emitted = 0

    def on_config(self, config: ComponentConfig) -> None:
        assert isinstance(config, RouterRules)
        self.config = config
        self._routes.clear()  # the routing cache is per rules version

    def routes(self, symbol: str) -> tuple[RoutingRule, ...]:
        """Rules matching ``symbol``, first match per horizon wins; cached per symbol."""
        cached = self._routes.get(symbol)
        if cached is None:
            seen: set[str] = set()
            picked = []
            for rule in self.config.rules:
                if rule.horizon not in seen and rule.matches(symbol):
                    seen.add(rule.horizon)
                    picked.append(rule)
            cached = self._routes[symbol] = tuple(picked)
        return cached

    def on_message(self, entry: Entry, out: Outbox) -> None:
        f = entry.message
        assert isinstance(f, Features)
        for rule in self.routes(f.symbol):
            for mw in rule.models:
                if mw.weight == 0:
                    continue  # a zero weight switches a model off without removing it
                edge_bps, confidence = MODELS[mw.id](f)
                out.emit(
                    Signal(
                        trace_ts_ns=f.trace_ts_ns,
                        symbol=f.symbol,
                        ts_ns=f.ts_ns,
                        model_id=mw.id,
                        horizon=rule.horizon,
                        edge_bps=edge_bps,
                        confidence=confidence,
                        shadow=mw.shadow,
                        regime=f.regime,
                        mid=f.mid,
                        features_hash=f.features_hash,
                    )
                )
                self.signals_emitted += 1

    def health_details(self) -> dict[str, Any]:
        return {"signals_emitted": self.signals_emitted, "rules": len(self.config.rules)}


SERVICE = ModelRouter
