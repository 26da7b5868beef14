"""feature_bus: market data in, ``md.ticks`` and ``features`` out."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from services.feature_bus.config import FeatureBusConfig
from services.feature_bus.features import FeatureState
from services.feature_bus.synthetic import SyntheticMarket
from shared.config import ComponentConfig
from shared.messages import Message
from shared.service import Service


class FeatureBus(Service):
    name: ClassVar[str] = "feature_bus"
    has_source: ClassVar[bool] = True

    config: FeatureBusConfig

    def __init__(self, config: ComponentConfig | None = None) -> None:
        super().__init__(config)
        self.market = SyntheticMarket(self.config)
        self.states: dict[str, FeatureState] = {}
        self.ticks_published = 0

    def on_config(self, config: ComponentConfig) -> None:
        assert isinstance(config, FeatureBusConfig)
        if config.symbols != self.config.symbols or config.seed != self.config.seed:
            self.market = SyntheticMarket(config)
        if config.features != self.config.features:
            self.states.clear()
        self.config = config

    def features_of(self, ticks: list[Any]) -> list[Message]:
        out: list[Message] = []
        for tick in ticks:
            state = self.states.get(tick.symbol)
            if state is None:
                state = self.states[tick.symbol] = FeatureState(self.config.features)
            out.append(tick)
            out.append(state.update(tick))
        return out

    async def run_source(self) -> None:
        """Publish at ``ticks_per_s`` (total), catching up in batches when late."""
        started = time.monotonic()
        sent = 0
        while not self.stopping:
            self.beat()
            rate = self.config.ticks_per_s
            if rate > 0:
                due = int((time.monotonic() - started) * rate) - sent
                if due <= 0:
                    await asyncio.sleep(min(0.005, 1.0 / rate))
                    continue
                n = min(due, self.config.max_batch_ticks)
            else:
                n = self.config.max_batch_ticks
            ticks = list(self.market.ticks(n, time.time_ns()))
            await self.publish(self.features_of(ticks))
            sent += n
            self.ticks_published += n
            if rate > 0 and due > 10 * self.config.max_batch_ticks:
                started, sent = time.monotonic(), 0  # far behind (a Redis outage): do not burst

    def health_details(self) -> dict[str, Any]:
        return {"ticks_published": self.ticks_published, "source": self.config.source}


SERVICE = FeatureBus
