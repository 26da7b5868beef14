"""Event time in the runtime: a service's side of the watermarks (shared/merge.py).

A mixin of ``Service``: the merge of a service's inputs in event-time order under its
upstreams' watermarks, the timers, and the watermark it promises in turn, written with
its outputs and repeated as a heartbeat while idle. docs/architecture.md, "Event time",
has the design with one tick's journey.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from shared import metrics as m
from shared.bus import TRANSIENT_ERRORS, Bus, Entry, Outbox, dead_letter
from shared.merge import TIMER, EventMerge
from shared.messages import MAX_NS, Watermark, watermark_stream

# How long an upstream never heard from is waited for before it is taken for dead.
STARTUP_GRACE_S = 30.0


def _id_ms(entry_id: str) -> int:
    """The time part of a Redis stream id (``ms-seq``); -1 for another kind of id."""
    head = entry_id.partition("-")[0]
    return int(head) if head.isdigit() else -1


class EventTime:
    """Event time for a ``Service`` (the attributes below are the service's)."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]]
    upstreams: ClassVar[dict[str, str]]
    # At most this many entries released per batch (live): a backlog released at once
    # (an upstream's watermark after a pause) is worked off in bounded steps.
    max_release: ClassVar[int] = 500
    config: Any
    bus: Bus
    log: logging.Logger
    stopping: bool

    if TYPE_CHECKING:

        def on_message(self, entry: Entry, out: Outbox) -> None: ...

        def on_committed(self) -> None: ...

        async def _sleep(self, seconds: float) -> None: ...

    def _init_event_time(self) -> None:
        # The runtime's clock: the event time of what is being handled (an entry's
        # ``ts_ns``, or a timer's time). Decisions read this, never the wall clock.
        self.event_ns = 0
        self.merge: EventMerge | None = (
            EventMerge(self.inputs, self.upstreams) if self.upstreams else None
        )
        if (
            self.merge is not None
            and type(self).upstream_floor_ns is not EventTime.upstream_floor_ns
        ):
            self.merge.floor = self.upstream_floor_ns
        self._wm_inputs = {watermark_stream(p): p for p in sorted(set(self.upstreams.values()))}
        self.wm_stream = watermark_stream(self.name)
        self._wm_out = 0  # written (committed) output watermark
        self._wm_source = 0  # what a source published through (``publish_now``)
        self._wm_wall = 0.0  # monotonic time of the last watermark written
        self._seen = dict.fromkeys(self._wm_inputs.values(), time.monotonic())
        self._wm_heard: set[str] = set()  # producers whose watermark has come at least once
        # producer -> (wm_ns, ms of its entry id) read, not yet known to be caught up with
        self._wm_pending: dict[str, list[tuple[int, int]]] = {}
        self._read_ms: dict[str, int] = {}  # input stream -> ms of the last entry id read
        self.more = False  # the merge has releasable entries left over (max_release)
        self._m_held = m.HELD_ENTRIES.labels(self.name)
        self._m_out_wm = m.OUT_WATERMARK_NS.labels(self.name)
        self._m_wm = {p: m.WATERMARK_NS.labels(self.name, p) for p in self._wm_inputs.values()}
        self._streams_of = {
            p: tuple(s for s, q in self.upstreams.items() if q == p)
            for p in self._wm_inputs.values()
        }

    # ---- hooks (override) ----------------------------------------------------------

    def on_timer(self, ts_ns: int, out: Outbox) -> None:
        """The timer at ``ts_ns`` (``next_timer_ns``) fired, in event-time order."""

    def next_timer_ns(self) -> int | None:
        """Event time of this service's next timer, None when none is set."""
        return None

    def upstream_floor_ns(self, producer: str) -> int:
        """A time before which ``producer`` can write nothing more, by what this service
        knows (beyond the producer's watermark); -1: nothing known. NEVER: nothing can
        come until this service has written something that asks for it."""
        return -1

    def source_clock_ns(self) -> int:
        """For a live source: the event time its clock has reached, through which it
        promises no more output (0: none; its time moves with its data only, as replay's
        and the synthetic market's). The heartbeat writes it while the source is idle, so
        timers downstream fire while a live feed is silent."""
        return 0

    def lookahead_ns(self, stream: str) -> int | None:
        """How long after an entry of ``stream`` its earliest output can be (None: it
        never causes one). Part of the watermark this service promises."""
        return 0

    # ---- handling ------------------------------------------------------------------

    def _handle_merged(
        self, entries: list[Entry], out: Outbox, acks: list[Entry], full: set[str] | None
    ) -> None:
        """``handle`` for a service with upstreams: watermarks in, entries into the merge,
        then every release possible now, in event-time order (timers included)."""
        merge = self.merge
        assert merge is not None
        wm_inputs = self._wm_inputs
        for entry in entries:
            msg = entry.message
            producer = wm_inputs.get(entry.stream)
            if producer is not None:
                acks.append(entry)
                if isinstance(msg, Watermark):
                    self._wm_pending.setdefault(producer, []).append(
                        (msg.wm_ns, _id_ms(entry.entry_id))
                    )
                    self._seen[producer] = time.monotonic()
                    self._wm_heard.add(producer)
                elif entry.error != "deleted":
                    out.dead.append(dead_letter(self.name, entry, entry.error or "undecodable"))
            elif msg is None:
                acks.append(entry)
                if entry.error != "deleted":
                    out.dead.append(dead_letter(self.name, entry, entry.error or "undecodable"))
            else:
                ts_ns: int = msg.ts_ns  # type: ignore[attr-defined]
                merge.push(entry.stream, ts_ns, entry, (entry.stream, entry.entry_id))
                self._read_ms[entry.stream] = _id_ms(entry.entry_id)
        self._apply_watermarks(full)
        self._step_over_dead()
        late = merge.late
        budget = self.max_release if full is not None else -1
        self.more = False
        for ts, item in merge.drain(self.next_timer_ns):
            self.event_ns = ts
            if item is TIMER:
                self.on_timer(ts, out)
            else:
                self.on_message(item, out)
                acks.append(item)
            budget -= 1
            if budget == 0:  # the rest next time: bounded work per batch (checked
                self.more = True  # before the merge pops another, which would be lost)
                break
        if merge.late != late:
            m.LATE_ENTRIES.labels(self.name).inc(merge.late - late)
        self._m_held.set(len(merge))

    def _apply_watermarks(self, full: set[str] | None) -> None:
        """A watermark read from ``wm.<producer>`` takes effect once every stream of that
        producer has been read up to it: the stream's last read gave less than a full
        batch (it was read to its end), or an entry of it read since is newer than the
        watermark entry (Redis ids carry the server's time). ``full`` None: everything
        was given (the in-memory harness)."""
        merge = self.merge
        assert merge is not None
        for producer, notes in list(self._wm_pending.items()):
            streams = self._streams_of[producer]
            while notes:
                wm_ns, at_ms = notes[0]
                if full is not None and not all(
                    s not in full or self._read_ms.get(s, -1) > at_ms for s in streams
                ):
                    break
                merge.advance(producer, wm_ns)
                notes.pop(0)
            if not notes:
                del self._wm_pending[producer]

    def _step_over_dead(self) -> None:
        """An upstream heard from within ``max_hold_ms`` holds entries back; one not
        heard from for longer is taken for dead and no longer does (wall clock:
        liveness only, never a decision)."""
        merge = self.merge
        assert merge is not None
        hold_s = self.config.bus.max_hold_ms / 1000
        now = time.monotonic()
        for producer, seen in self._seen.items():
            # one never heard from may be starting still (imports on a loaded machine):
            # stepping over it then releases entries out of event-time order
            limit_s = hold_s if producer in self._wm_heard else max(hold_s, STARTUP_GRACE_S)
            dead = now - seen > limit_s
            if dead and producer not in merge.forced:
                merge.forced.add(producer)
                m.WATERMARK_FORCED.labels(self.name, producer).inc()
                self.log.warning(
                    "%s silent for %.1f s: no longer waiting for its watermark",
                    producer,
                    now - seen,
                )
            elif not dead and producer in merge.forced:
                merge.forced.discard(producer)
                self.log.info("%s heard from again: waiting for its watermark", producer)

    def output_wm(self) -> int:
        """Event time through which this service's outputs are complete."""
        wm = self._wm_source
        if self.merge is not None:
            wm = max(wm, self.merge.out_wm(self.lookahead_ns, self.next_timer_ns()))
        return min(wm, MAX_NS)

    def queue_watermark(self, out: Outbox) -> int:
        """Queue this service's watermark into ``out`` when it moved; returns it (0: not)."""
        if self.merge is None:
            return 0
        wm = self.output_wm()
        if wm <= self._wm_out:
            return 0
        for p, w in self.merge.wm.items():
            self._m_wm[p].set(w)
        out.emit(Watermark(producer=self.name, wm_ns=wm, wall_ns=time.time_ns()), self.wm_stream)
        return wm

    def committed(self, wm_ns: int = 0) -> None:
        """The batch was written: its watermark (0: none) is now this service's, and
        ``on_committed`` records what it produced."""
        if wm_ns:
            self._wm_out, self._wm_wall = wm_ns, time.monotonic()
            self._m_out_wm.set(wm_ns)
        self.on_committed()

    async def _heartbeat(self) -> None:
        """While idle, repeat the watermark: downstream services know this one is alive
        (and a source's last watermark is not lost with a reader's restart). A live
        source's watermark moves on with its clock (``source_clock_ns``) meanwhile."""
        while not self.stopping:
            every_s = self.config.bus.heartbeat_ms / 1000
            await self._sleep(every_s)
            if self.stopping or time.monotonic() - self._wm_wall < every_s:
                continue
            wm = min(max(self._wm_out, self.source_clock_ns()), MAX_NS)
            note = Watermark(producer=self.name, wm_ns=wm, wall_ns=time.time_ns())
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self.bus.publish([(self.wm_stream, note)])
                self._wm_wall = time.monotonic()
                if wm > self._wm_out:  # the source's clock moved its watermark
                    self._wm_source = max(self._wm_source, wm)
                    self._wm_out = wm
                    self._m_out_wm.set(wm)
