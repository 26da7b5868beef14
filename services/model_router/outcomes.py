"""Realised outcomes of past predictions, from later features of the same symbol. Pure.

A prediction made at ``ts_ns`` with mid ``m0`` for horizon ``h`` matures at the first
features message of that symbol with ``ts_ns' >= ts_ns + h``; its outcome is the
realised move ``realised_bps = 1e4 * (m1 / m0 - 1)``. A model's call is a hit when
``sign(edge_bps) == sign(realised_bps)``; a flat call or a flat market is not scored.
Queues are bounded (``max_pending``, 5,000 per symbol and horizon: about 15 MB; a
1-minute horizon at 80 features/s per symbol fits; the oldest are dropped and
counted) so memory stays bounded whatever the horizon.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from shared.messages import Features


@dataclass(frozen=True, slots=True)
class Pending:
    features: Features
    horizon: str
    model_ids: tuple[str, ...]  # every model routed (learners learn even while waiting)
    calls: tuple[tuple[str, float, float], ...]  # (model_id, edge_bps, p_dir) of the voters


@dataclass(frozen=True, slots=True)
class Outcome:
    pending: Pending
    realised_bps: float
    ts_ns: int


class OutcomeBook:
    def __init__(self, max_pending: int = 5_000) -> None:
        self.max_pending = max_pending
        # symbol -> horizon -> (horizon_ns, predictions oldest first)
        self._queues: dict[str, dict[str, tuple[int, deque[Pending]]]] = {}
        self.dropped = 0

    def add(self, p: Pending, horizon_ns: int) -> None:
        per_symbol = self._queues.setdefault(p.features.symbol, {})
        held = per_symbol.get(p.horizon)
        if held is None:
            held = per_symbol[p.horizon] = (horizon_ns, deque())
        queue = held[1]
        if len(queue) >= self.max_pending:
            queue.popleft()
            self.dropped += 1
        queue.append(p)

    def mature(self, f: Features) -> list[Outcome]:
        """Outcomes of the predictions on ``f.symbol`` whose horizon has elapsed at ``f``."""
        out: list[Outcome] = []
        for h_ns, queue in self._queues.get(f.symbol, {}).values():
            while queue and f.ts_ns - queue[0].features.ts_ns >= h_ns:
                p = queue.popleft()
                out.append(Outcome(p, (f.mid / p.features.mid - 1.0) * 1e4, f.ts_ns))
        return out

    def pending(self) -> int:
        return sum(len(q) for per in self._queues.values() for _, q in per.values())
