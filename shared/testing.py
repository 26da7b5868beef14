"""The in-memory harness: services wired to each other with no Redis, in one process.

Bytewax's testing source is the model: feed a list of messages in, get every output
out. Each service runs exactly the code it runs live (``Service.handle``: the same
event-time merge, the same handlers, the same watermarks), only the transport is a
list. The backtest, the in-process bench and the unit tests drive services through it.

    h = Harness([ModelRouter(rules), RiskHarmoniser(params)])
    h.feed(FEATURES, features, producer="feature_bus")   # complete through the last ts
    h.run()
    h.out[SIGNALS], h.out[ORDERS]

A stream read by a service but produced by none of the harness's services is an
input the caller feeds; ``feed`` with ``producer`` also gives that producer's
watermark (by default: complete through the newest ``ts_ns`` fed). Without a
watermark, a merging service holds what it was fed (as live, where it would wait for
the producer's heartbeat). Redis writes a handler queues (``Outbox.call``) are dropped:
durable state is the stack's concern, not the harness's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from shared.bus import Entry, Outbox
from shared.messages import DLQ, DeadLetter, Message, Watermark, watermark_stream
from shared.service import Service


class Harness:
    """Services in memory; ``out[stream]`` collects every message written to it."""

    def __init__(self, services: Sequence[Service[Any]], *, record: Iterable[str] | None = None):
        self.services = list(services)
        self.record = None if record is None else set(record)
        self.out: dict[str, list[Message]] = defaultdict(list)
        self.dead: list[DeadLetter] = []
        self._readers: dict[str, list[Service[Any]]] = defaultdict(list)
        for svc in self.services:
            for stream in (*svc.inputs, *(watermark_stream(p) for p in svc.upstreams.values())):
                if svc not in self._readers[stream]:
                    self._readers[stream].append(svc)
        self._inbox: dict[int, list[Entry]] = {id(s): [] for s in self.services}
        self._seq: dict[str, int] = defaultdict(int)

    # ---- input -------------------------------------------------------------------

    def feed(
        self,
        stream: str,
        messages: Iterable[Message],
        *,
        producer: str | None = None,
        wm_ns: int | None = None,
    ) -> None:
        """Deliver ``messages`` on ``stream`` to its readers; with ``producer``, then
        that producer's watermark (``wm_ns``, default the newest ``ts_ns`` fed)."""
        newest = 0
        for msg in messages:
            self._deliver(stream, msg)
            newest = max(newest, getattr(msg, "ts_ns", 0))
        if producer is not None:
            self.watermark(producer, newest if wm_ns is None else wm_ns)

    def watermark(self, producer: str, wm_ns: int) -> None:
        self._deliver(watermark_stream(producer), Watermark(producer=producer, wm_ns=wm_ns))

    def _deliver(self, stream: str, msg: Message) -> None:
        readers = self._readers.get(stream)
        if self.record is None or stream in self.record:
            self.out[stream].append(msg)
        if not readers:
            return
        self._seq[stream] += 1
        entry_id = f"{self._seq[stream]}-0"
        for svc in readers:
            self._inbox[id(svc)].append(Entry(stream, entry_id, {}, msg))

    # ---- running -----------------------------------------------------------------

    def run(self, *, max_rounds: int = 1_000_000) -> int:
        """Handle until every service is idle; returns the number of batches handled."""
        batches = 0
        busy = True
        while busy:
            busy = False
            for svc in self.services:
                box = self._inbox[id(svc)]
                if not box:
                    continue
                self._inbox[id(svc)] = []
                self.step(svc, box)
                batches += 1
                busy = True
            if batches > max_rounds:
                raise RuntimeError("harness: services keep producing (a loop?)")
        return batches

    def step(self, svc: Service[Any], entries: list[Entry]) -> Outbox:
        """One batch of ``svc``, its outputs delivered (what ``_process`` commits)."""
        out = Outbox()
        acks: list[Entry] = []
        svc.handle(entries, out, acks)
        wm = svc.queue_watermark(out)
        for stream, msg in out.messages:
            self._deliver(stream, msg)
        for dl in out.dead:
            self.dead.append(dl)
            self._deliver(DLQ, dl)
        svc.committed(wm)
        return out

    def held(self) -> dict[str, int]:
        """Entries each merging service still holds (waiting for a watermark)."""
        return {s.name: len(s.merge) for s in self.services if s.merge is not None}
