"""Microbenchmarks of the pure cores, and the whole pipeline chained in one process.

`inprocess_ticks_per_s` runs the real service handlers (the same `on_message` code that
runs live) wired to each other in memory, with no Redis and no encoding: the ratio to
`e2e_ticks_per_s` is the cost of distribution.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from shared.bus import Entry, Outbox
from shared.messages import Message, Tick


def per_call_us(fn: Callable[[], Any], *, calls: int = 20_000, repeats: int = 7) -> float:
    """Median over ``repeats`` runs of the mean time per call, in microseconds."""
    fn()  # warm caches
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - t0) / calls / 1e3)
    return statistics.median(samples)


class InProcessPipeline:
    """feature source -> model_router -> risk_harmoniser -> execution, in memory."""

    def __init__(self, configs: dict[str, Any]) -> None:
        from services.execution.service import Execution
        from services.feature_bus.service import FeatureBus
        from services.model_router.service import ModelRouter
        from services.risk_harmoniser.service import RiskHarmoniser

        self.feature_bus = FeatureBus(configs["feature_bus"])
        self.router = ModelRouter(configs["model_router"])
        self.risk = RiskHarmoniser(configs["risk_harmoniser"])
        self.execution = Execution(configs["execution"])
        self.fills = 0
        self._seq = 0

    def _deliver(self, messages: list[tuple[str, Message]]) -> None:
        """Deliver in waves, each service getting its share of a wave as one batch (as
        the live consume loop does: on_message per entry, on_batch_end once)."""
        wave = messages
        while wave:
            produced: list[tuple[str, Message]] = []
            for svc in (self.router, self.risk, self.execution):
                mine = [(s, m) for s, m in wave if s in svc.inputs]
                if not mine:
                    continue
                out = Outbox()
                for stream, msg in mine:
                    self._seq += 1
                    svc.on_message(Entry(stream, f"{self._seq}-0", {}, msg), out)
                svc.on_batch_end(out)
                produced.extend(out.messages)
            self.fills += sum(1 for s, _ in produced if s == "fills")
            wave = produced

    def run(self, n_ticks: int, batch: int = 200) -> float:
        """Ticks per second through the whole chain."""
        t0 = time.perf_counter()
        done = 0
        while done < n_ticks:
            ticks: list[Tick] = list(self.feature_bus.market.ticks(batch, time.time_ns()))
            produced = self.feature_bus.features_of(ticks)
            self._deliver([(m.STREAM, m) for m in produced])
            done += batch
        return done / (time.perf_counter() - t0)
