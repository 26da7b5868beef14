"""Event-time order across a service's inputs, under watermarks. Pure: no I/O, no clock.

A service with several inputs (risk: fills, rejections, md.ticks, signals; execution:
md.ticks, orders) must handle them in one order that does not depend on when entries
happened to arrive, or its outputs would depend on scheduling. The order is
lexicographic in ``(ts_ns, rank, seq)``: event time, then the input's rank (its place
in ``streams``; timers rank last), then the entry's place in its stream.

Each input stream has a producer, and each producer marks how far its output is
complete: a *watermark* ``wm`` promises that no later entry of its streams has
``ts_ns <= wm``. An entry ``(t, r)`` may be handled once no future entry can sort
before it, i.e. for every producer ``p`` with streams of ranks ``R_p``:

    wm_p >= t,  or  wm_p == t - 1 and min(R_p) >= r

(a future entry of ``p`` has ``ts > wm_p``; at ``ts == t`` it sorts after ``(t, r)``
when its rank is not lower; within one stream, later entries come later). Released in
this order, the concatenation of every release is the global sort of all entries,
whatever the batches and the timing: that is the determinism the backtest relies on.

A service's own output watermark (``out_wm``) follows from the same state, with
*lookahead*: an entry of stream ``s`` at ``t`` can cause outputs no earlier than
``t + lookahead(s)`` (None: never any output, e.g. fills in risk). A service's next
possible output is bounded by the next entry each input can still deliver (its head,
or ``wm + 1``) plus that input's lookahead, and by its next timer. This is the
Chandy-Misra-Bryant conservative simulation; the lookahead of execution's orders (the
simulated latency) is what lets the risk -> execution -> risk loop advance without a
round trip per nanosecond, and a consumer's own knowledge of a producer (``floor``:
risk knows execution writes only about orders risk sent, so with none working it waits
for nothing) lets it advance without a round trip per signal (docs/architecture.md,
"Event time").

A producer whose heartbeats stopped (the runtime decides, on the wall clock) is
``forced``: it no longer holds anything back (it counts as complete through the newest
time any input has shown, so entries go on but a timer does not fire before the data
has reached its time), and a dead upstream never freezes the service. Its late
entries, if it comes back, are handled at once and counted in ``late``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# Beyond any nanosecond time of the epoch (int64).
NEVER = 2**63 - 1

TIMER = object()  # what ``pop`` returns for a timer


class EventMerge:
    """Buffers entries per input stream and releases them in event-time order."""

    __slots__ = (
        "streams",
        "rank",
        "timer_rank",
        "upstream",
        "wm",
        "min_rank",
        "forced",
        "_heaps",
        "_seq",
        "_held",
        "last_ts",
        "_last_key",
        "late",
        "max_seen",
        "floor",
    )

    def __init__(self, streams: Sequence[str], upstream: Mapping[str, str]) -> None:
        self.streams = tuple(streams)
        self.rank = {s: i for i, s in enumerate(self.streams)}
        self.timer_rank = len(self.streams)
        self.upstream = {s: upstream[s] for s in self.streams if s in upstream}
        producers = sorted(set(self.upstream.values()))
        self.wm: dict[str, int] = dict.fromkeys(producers, -1)  # -1: nothing promised yet
        self.min_rank = {
            p: min(self.rank[s] for s, q in self.upstream.items() if q == p) for p in producers
        }
        self.forced: set[str] = set()
        self._heaps: dict[str, list[tuple[int, int, Any]]] = {s: [] for s in self.streams}
        self._seq = 0
        self._held: set[Any] = set()  # keys of buffered entries (no double buffering)
        self.last_ts = 0  # event time of the last release
        self._last_key = (0, -1)
        self.late = 0  # releases that sorted before an earlier release
        self.max_seen = -1  # the newest event time any input has shown (entry or watermark)
        # What the consumer itself knows of a producer beyond its watermark: a time before
        # which nothing more can come from it (NEVER: nothing at all for now). Risk knows
        # execution writes only about the orders risk sent: with none working, none.
        self.floor: Callable[[str], int] | None = None

    # ---- input ---------------------------------------------------------------------

    def push(self, stream: str, ts_ns: int, item: Any, key: Any = None) -> bool:
        """Buffer ``item`` of ``stream`` at ``ts_ns``; False when ``key`` is held already."""
        if key is not None:
            if key in self._held:
                return False
            self._held.add(key)
        self._seq += 1
        heapq.heappush(self._heaps[stream], (ts_ns, self._seq, (key, item)))
        if ts_ns > self.max_seen:
            self.max_seen = ts_ns
        return True

    def advance(self, producer: str, wm_ns: int) -> None:
        """``producer``'s output is complete through ``wm_ns`` (never moves back)."""
        if producer in self.wm and wm_ns > self.wm[producer]:
            self.wm[producer] = wm_ns
            if wm_ns > self.max_seen:
                self.max_seen = wm_ns

    def holds(self, key: Any) -> bool:
        return key in self._held

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())

    # ---- release -------------------------------------------------------------------

    def releasable(self, ts_ns: int, rank: int) -> bool:
        floor = self.floor
        for p, w in self.wm.items():
            if floor is not None and floor(p) >= ts_ns:
                continue
            if p in self.forced:
                # Stepped over: it holds nothing back, but time is what the others show
                # (a timer does not fire before any input has reached its time).
                w = self.max_seen
            if w >= ts_ns:
                continue
            if w == ts_ns - 1 and self.min_rank[p] >= rank:
                continue
            return False
        return True

    def pop(self, timer_ns: int | None = None) -> tuple[int, Any] | None:
        """The next releasable ``(ts_ns, item)`` (``item`` is ``TIMER`` for the timer at
        ``timer_ns``), or None when the next in order must wait."""
        best: tuple[int, int, int] | None = None
        best_stream = ""
        for stream, heap in self._heaps.items():
            if heap:
                ts, seq, _ = heap[0]
                key = (ts, self.rank[stream], seq)
                if best is None or key < best:
                    best, best_stream = key, stream
        if timer_ns is not None and (best is None or (timer_ns, self.timer_rank) < best[:2]):
            if not self.releasable(timer_ns, self.timer_rank):
                return None
            self._released(timer_ns, self.timer_rank)
            return timer_ns, TIMER
        if best is None or not self.releasable(best[0], best[1]):
            return None
        ts, _, (key, item) = heapq.heappop(self._heaps[best_stream])
        if key is not None:
            self._held.discard(key)
        self._released(ts, best[1])
        return ts, item

    def _released(self, ts_ns: int, rank: int) -> None:
        key = (ts_ns, rank)
        if key < self._last_key:
            self.late += 1
        else:
            self._last_key = key
            self.last_ts = ts_ns

    def drain(self, timer: Callable[[], int | None] | None = None) -> Iterable[tuple[int, Any]]:
        """Every release possible now, in order; ``timer`` gives the next timer (asked
        again after each release, since handling may move it; one the handler left
        where it was does not fire twice)."""
        fired: int | None = None
        while True:
            at = timer() if timer is not None else None
            if at is not None and at == fired:
                at = None
            nxt = self.pop(at)
            if nxt is None:
                return
            if nxt[1] is TIMER:
                fired = nxt[0]
            yield nxt

    # ---- own watermark -------------------------------------------------------------

    def next_input_ns(self, stream: str) -> int:
        """The earliest event time ``stream`` can still deliver: its buffered head, or
        just past its producer's watermark (a forced producer: past the last release)."""
        heap = self._heaps[stream]
        head = heap[0][0] if heap else NEVER
        p = self.upstream.get(stream)
        if p is None:
            return min(head, self.last_ts)  # no promise: anything may still come
        future = (self.max_seen if p in self.forced else self.wm[p]) + 1
        if self.floor is not None:
            future = max(future, min(self.floor(p), NEVER - 1) + 1)
        return min(head, future)

    def out_wm(self, lookahead: Callable[[str], int | None], timer_ns: int | None = None) -> int:
        """Event time through which this service's outputs are complete."""
        nxt = NEVER if timer_ns is None else timer_ns
        for stream in self.streams:
            la = lookahead(stream)
            if la is not None:
                nxt = min(nxt, self.next_input_ns(stream) + la)
        return min(nxt, NEVER) - 1
