"""The one lifecycle every service shares; a service is a handler plus a config schema.

A ``Service`` reads as its life: ``main`` starts the HTTP app and the loops,
``_consume_loop`` reads batches, ``_process`` handles one batch (``handle``, no I/O) and
commits outputs with acks, ``_reclaim_loop`` takes over stuck entries, and
``stop``/``_close`` shut down cleanly. Two mixins hold the rest: event time
(shared/eventtime.py: the merge under watermarks, timers, heartbeats) and the control
plane (shared/control_plane.py: config versions, trading control, ``/health``).

Subclasses set ``name``, ``inputs`` (and ``upstreams`` to merge them in event time) and
override the hooks: ``on_message`` (sync: a whole batch is handled with no await in
between, so a config swap can never land in the middle of one), ``on_timer``,
``next_timer_ns``, ``lookahead_ns``, ``on_batch_end``, ``run_source``, ``on_config``,
``on_control``, ``on_start``, ``health_details``, ``add_routes``.

(About 500 lines: the life, the consume loop and the reclaimer are one idea, a batch's
way from read to acknowledgement, and read best together.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar, cast

from redis.asyncio import Redis

from shared import metrics as m
from shared.backoff import Backoff
from shared.bus import TRANSIENT_ERRORS, Bus, Entry, Outbox, connect, dead_letter, redis_url
from shared.config import (
    ComponentConfig,
    load_file,
)
from shared.control import (
    ControlCommand,
    TradingState,
    load_state,
)
from shared.control_plane import APPLIED_KEY, ControlPlane
from shared.eventtime import EventTime
from shared.messages import (
    DLQ,
    MAX_NS,
    Watermark,
)

__all__ = ["APPLIED_KEY", "Backoff", "Service"]

C = TypeVar("C", bound=ComponentConfig)


class Service(EventTime, ControlPlane[C], Generic[C]):
    """Base class: the lifecycle. Subclasses supply the handler and the schema."""

    name: ClassVar[str] = "service"
    component: ClassVar[str | None] = None  # config component; defaults to ``name``
    inputs: ClassVar[tuple[str, ...]] = ()
    # Input stream -> the service producing it. Given, the inputs are merged in event
    # time under the producers' watermarks (shared/merge.py; ``inputs`` order is the
    # rank at equal times), and this service writes its own on ``wm.<name>``.
    upstreams: ClassVar[dict[str, str]] = {}
    channels: ClassVar[tuple[str, ...]] = ()  # extra pub/sub channels -> on_channel
    persists_trading_state: ClassVar[bool] = False

    def __init__(self, config: C | None = None) -> None:
        self.config: C = config if config is not None else cast(C, load_file(self.comp))
        self._init_event_time()
        self.config_version = 0
        self.config_hash = ""
        self.trading = TradingState()
        self.r: Redis = None  # type: ignore[assignment]  # set by main()
        self.bus: Bus = None  # type: ignore[assignment]
        self.log = logging.getLogger(f"edgebus.{self.name}")
        self.stopping = False
        self.ready = asyncio.Event()
        self.redis_ok = False
        self.started_ns = time.time_ns()
        self.processed = 0
        self.dead_lettered = 0
        self.handler_errors = 0
        self.lag: dict[str, tuple[int, int]] = {}
        self._stop = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_beat = time.monotonic()
        self._last_error: dict[str, str] = {}  # entry id -> last handler error, for the dlq reason
        self._state_stale = False  # a batch was not written: memory may be ahead of Redis
        self._own_done = asyncio.Event()  # the consume loop has no own pending to re-read
        self._refused_version: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # Metric children bound once (a .labels() lookup per batch is measurable).
        self._m_handler_errors = m.HANDLER_ERRORS.labels(self.name)
        self._m_batch_latency = m.BATCH_LATENCY.labels(self.name)
        self._m_batch_size = m.BATCH_SIZE.labels(self.name)
        self._m_processed: dict[str, Any] = {}
        self._m_produced: dict[str, Any] = {}

    @property
    def comp(self) -> str:
        return self.component or self.name

    # ---- hooks (override) ------------------------------------------------------------

    async def on_start(self) -> None:
        """Load durable state from Redis (self.r is connected)."""

    def on_message(self, entry: Entry, out: Outbox) -> None:
        """Handle one decoded entry (``entry.message``); put outputs in ``out``."""
        raise NotImplementedError

    def on_batch_end(self, out: Outbox) -> None:
        """After every entry of a batch was handled; e.g. emit state snapshots."""

    async def run_source(self) -> None:
        """A long-running producer (market data); cancelled at shutdown."""

    has_source: ClassVar[bool] = False

    def on_config(self, config: C) -> None:
        """A new config, applied between batches; ``self.config`` is still the old one
        here and becomes ``config`` after, unless this sets it itself."""

    def on_control(self, cmd: ControlCommand, out: Outbox) -> None:
        """A trading.control command, after ``self.trading`` was updated."""

    async def on_channel(self, channel: str, data: str) -> None:
        """A message on one of ``channels``."""

    def health_details(self) -> dict[str, Any]:
        return {}

    def add_routes(self, app: Any) -> None:
        """Add service-specific HTTP routes to the FastAPI app."""

    async def on_stop(self) -> None:
        """Flush or persist before the connection closes."""

    async def on_batch_failed(self) -> None:
        """A batch was not written (the handler raised, or the write failed), so memory may
        be ahead of Redis: stateful services reload their state here. Runs under the lock
        before the next batch."""

    def on_committed(self) -> None:
        """The last batch (or control outbox) was written: record what it produced."""

    # ---- life ------------------------------------------------------------------------

    async def main(self, url: str | None = None, *, http: bool = True) -> None:
        """Run until stop(): HTTP, startup, loops; then finish the batch and close."""
        settings = self.config.bus
        self.r = connect(url or redis_url(), block_ms=settings.block_ms)
        self.bus = Bus(self.r, self.name, (*self.inputs, *self._wm_inputs), settings)
        server = None
        if http:
            from shared.http import serve

            server = await serve(self)
        try:
            await self._startup()
            if not self.stopping:
                self._spawn(self._consume_loop())
                self._spawn(self._reclaim_loop())
                self._spawn(self._listen())
                self._spawn(self._observe())
                if self.merge is not None:  # a producer in event time: its heartbeat
                    self._spawn(self._heartbeat())
                if self.has_source:
                    self._spawn(self._guard(self.run_source, "source"))
                # Ready only once subscribed: a reload or halt sent then is not missed.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._subscribed.wait(), timeout=10.0)
                self.ready.set()
                self.log.info("started: inputs=%s consumer=%s", self.inputs, self.bus.consumer)
            await self._stop.wait()
        finally:
            await self._close(server)

    def stop(self) -> None:
        """Stop reading; the loop finishes and acks its batch, then main() returns."""
        self.stopping = True
        self._stop.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _startup(self) -> None:
        backoff = Backoff()
        while not self.stopping:
            try:
                await self.r.ping()  # type: ignore[misc]
                await self.bus.ensure_groups()
                await self._sync_config()
                self.trading = await load_state(self.r)
                m.TRADING_HALTED.labels(self.name).set(1 if self.trading.halted else 0)
                await self.on_start()
                self._redis_up(True)
                return
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
                await self._sleep(backoff.next())

    async def _close(self, server: Any) -> None:
        self.stopping = True
        consume = self._tasks[0] if self._tasks else None
        if consume is not None:
            # The consume loop sees ``stopping`` after its current read (<= block_ms) and
            # returns once that batch is written and acknowledged.
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(consume), timeout=3.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(*TRANSIENT_ERRORS):
            await self.on_stop()
        if server is not None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.edgebus_task, timeout=1.5)
        with contextlib.suppress(Exception):
            self.bus.close()
        with contextlib.suppress(Exception):
            await self.r.aclose()
        self.log.info("stopped: processed=%d dlq=%d", self.processed, self.dead_lettered)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _guard(self, fn: Callable[[], Awaitable[None]], what: str) -> None:
        """Run a long-lived coroutine; restart it after transient Redis errors."""
        backoff = Backoff()
        while not self.stopping:
            try:
                await fn()
                return
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
                await self._sleep(backoff.next())
            except Exception:
                self.log.exception("%s failed; restarting in 1 s", what)
                await self._sleep(1.0)

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def _redis_up(self, ok: bool, exc: BaseException | None = None) -> None:
        if not ok:
            # Redis may have restarted and lost writes it had acknowledged (AOF everysec):
            # stateful services reload their state before the next batch.
            self._state_stale = True
            m.REDIS_ERRORS.labels(self.name).inc()
            if self.redis_ok or exc is not None:
                self.log.warning("redis unavailable (%s); retrying with backoff", exc)
        elif not self.redis_ok:
            self.log.info("redis connected")
        self.redis_ok = ok
        m.REDIS_UP.labels(self.name).set(1 if ok else 0)

    # ---- consuming -------------------------------------------------------------------

    async def _consume_loop(self) -> None:
        own_pending = True  # first finish what this consumer had before a crash
        # Where the re-read of own pending entries goes on: entries a merge holds stay
        # pending, so a re-read from "0" would return them for ever.
        after: dict[str, str] = {}
        backoff = Backoff()
        # A read sent ahead with the last commit is still handled after stop(): its
        # entries were delivered to this consumer.
        while not self.stopping or self.bus.prefetched is not None:
            self.beat()
            if not self.inputs:
                await self._sleep(0.5)
                continue
            try:
                entries = await self.bus.read(own_pending=own_pending, after=after)
                if own_pending and not entries:
                    own_pending = False
                    after = {}
                    self._own_done.set()
                    continue
                if own_pending:
                    for entry in entries:
                        after[entry.stream] = entry.entry_id
                if entries:
                    settings = self.bus.settings
                    gather = settings.batch_interval_ms and len(entries) < settings.batch_size
                    prefetch = not own_pending and not self.stopping and not gather
                    ok = await self._process(entries, prefetch=prefetch, fresh=not own_pending)
                    if own_pending and not ok:
                        own_pending = False  # a poison batch: leave it to the reclaimer
                        after = {}
                        self._own_done.set()
                    if gather and not own_pending:
                        await self._sleep(settings.batch_interval_ms / 1000)
                elif self.merge is not None and (len(self.merge) or self._wm_pending):
                    await self._process([], fresh=True)  # an upstream dead by now?
                while self.more and not self.stopping:
                    await self._process([])  # what the last batch left (no read: not fresh)
                if not self.redis_ok:
                    self._redis_up(True)
                backoff.reset()
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
                own_pending = True  # a write may have failed: re-read what is ours
                after = {}
                self._own_done.clear()
                await self._sleep(backoff.next())
            except Exception as exc:
                if "NOGROUP" in str(exc):  # Redis lost its data (restart without AOF)
                    self.log.warning("consumer group missing; recreating")
                    with contextlib.suppress(Exception):
                        await self.bus.ensure_groups()
                else:
                    self.log.exception("consume loop error")
                await self._sleep(backoff.next())

    async def _process(
        self, entries: list[Entry], *, prefetch: bool | None = None, fresh: bool = False
    ) -> bool:
        """Handle a batch and commit its outputs with its acks. False if the handler
        raised: then nothing is written and the entries stay pending.

        With ``upstreams``, entries go through the event-time merge: those it releases
        are handled (and acknowledged) in order, the rest stay pending, held.

        ``prefetch`` is the consume loop's (see ``Bus.commit``); others leave it None.
        ``fresh``: the entries are a read of new entries (``>``), so a stream that gave
        fewer than a full batch has given everything written before the read."""
        async with self._lock:
            if self._state_stale:
                await self.on_batch_failed()
                self._state_stale = False
            t0 = time.perf_counter()
            out = Outbox()
            acks: list[Entry] = []
            full: set[str] | None = set(self.inputs)  # streams that may hold more
            if fresh:
                counts: dict[str, int] = {}
                for entry in entries:
                    counts[entry.stream] = counts.get(entry.stream, 0) + 1
                limit = self.bus.settings.batch_size
                full = {s for s, n in counts.items() if n >= limit}
            try:
                self.handle(entries, out, acks, full)
                wm = self.queue_watermark(out)
            except Exception as exc:
                self.handler_errors += 1
                self._m_handler_errors.inc()
                reason = f"handler raised {type(exc).__name__}: {exc}"
                for entry in entries:
                    self._last_error[entry.entry_id] = reason
                if len(self._last_error) > 10_000:
                    self._last_error.clear()
                self.log.exception("handler failed; %d entries left pending", len(entries))
                self._state_stale = True
                return False
            await self._commit(out, acks, prefetch=prefetch)
            self.committed(wm)
            self._count(acks, out)
            self._m_batch_latency.observe(time.perf_counter() - t0)
            self._m_batch_size.observe(len(entries))
            return True

    def handle(
        self,
        entries: list[Entry],
        out: Outbox,
        acks: list[Entry],
        full: set[str] | None = None,
    ) -> None:
        """The handling of a batch, no I/O (what ``_process`` commits, and what the
        in-memory harness runs): ``acks`` gets the entries done with.

        A watermark read from ``wm.<producer>`` takes effect once every stream of that
        producer has been read up to it: not while one of them is in ``full`` (its
        read gave a full batch, so entries written before the watermark may be unread).
        """
        merge = self.merge
        if merge is None:
            for entry in entries:
                msg = entry.message
                if msg is not None:
                    ts = getattr(msg, "ts_ns", 0)
                    if ts > self.event_ns:
                        self.event_ns = ts
                    self.on_message(entry, out)
                elif entry.error != "deleted":
                    out.dead.append(dead_letter(self.name, entry, entry.error or "undecodable"))
            acks.extend(entries)
        else:
            self._handle_merged(entries, out, acks, full)
        self.on_batch_end(out)

    async def _commit(
        self, out: Outbox, entries: list[Entry], *, prefetch: bool | None = None
    ) -> None:
        try:
            await self.bus.commit(out, entries, prefetch=prefetch)
        except BaseException:
            self._state_stale = True
            raise

    def _count(self, entries: list[Entry], out: Outbox) -> None:
        self.processed += len(entries)
        per_stream: dict[str, int] = {}
        for entry in entries:
            per_stream[entry.stream] = per_stream.get(entry.stream, 0) + 1
        self._inc(m.PROCESSED, self._m_processed, per_stream)
        self._count_produced(stream for stream, _ in out.messages)
        for dl in out.dead:
            self.dead_lettered += 1
            m.DLQ.labels(self.name, dl.source_stream).inc()

    async def publish(self, messages: list[Any]) -> int:
        """For sources: write messages (capped), counted in the metrics."""
        await self.publish_now(messages)()
        return len(messages)

    def publish_now(self, messages: list[Any]) -> Callable[[], Awaitable[None]]:
        """``publish``, written before this returns (``Bus.publish_now``); await the
        returned callable for the outcome. Counted in the metrics once it landed.

        A source's watermark goes with them: its ticks come in event-time order, so it
        is complete through the newest it wrote."""
        wm = 0
        for item in messages:
            msg = item[1] if isinstance(item, tuple) else item
            if msg.STREAM != DLQ:
                wm = max(wm, getattr(msg, "ts_ns", 0))
        items = list(messages)
        if wm > self._wm_source:
            note = Watermark(producer=self.name, wm_ns=min(wm, MAX_NS), wall_ns=time.time_ns())
            items.append((self.wm_stream, note))
        landed = self.bus.publish_now(items)

        async def outcome() -> None:
            await landed()
            if wm > self._wm_source:
                self._wm_source = wm
                if wm > self._wm_out:
                    self._wm_out, self._wm_wall = wm, time.monotonic()
            self._count_produced(
                item[0] if isinstance(item, tuple) else item.STREAM for item in messages
            )

        return outcome

    def _count_produced(self, streams: Iterable[str]) -> None:
        produced: dict[str, int] = {}
        for stream in streams:
            produced[stream] = produced.get(stream, 0) + 1
        self._inc(m.PRODUCED, self._m_produced, produced)

    def _inc(self, metric: Any, children: dict[str, Any], counts: dict[str, int]) -> None:
        """Per-stream counters, their children bound once."""
        for stream, n in counts.items():
            child = children.get(stream)
            if child is None:
                child = children[stream] = metric.labels(self.name, stream)
            child.inc(n)

    # ---- taking over stuck work --------------------------------------------------------

    async def _reclaim_loop(self) -> None:
        while not self.stopping:
            # Not while the consume loop re-reads this consumer's own pending entries (after
            # a restart or a Redis error): those are idle too, and both would handle them.
            if not self._own_done.is_set():
                await self._sleep(0.05)
                continue
            for stream in self.inputs:
                if self.stopping:
                    break
                try:
                    # Under the lock: an entry the merge released is then written and
                    # acknowledged, not idle-looking while its batch is being committed.
                    async with self._lock:
                        retry, poison = await self.bus.reclaim(stream)
                        if self.merge is not None:  # held entries wait for a watermark
                            held = self.merge.holds
                            retry = [e for e in retry if not held((e.stream, e.entry_id))]
                            poison = [(e, n) for e, n in poison if not held((e.stream, e.entry_id))]
                except TRANSIENT_ERRORS as exc:
                    self._redis_up(False, exc)
                    break
                except Exception:
                    self.log.exception("reclaim failed on %s", stream)
                    continue
                if poison:
                    out = Outbox()
                    for entry, count in poison:
                        last = self._last_error.pop(entry.entry_id, "unknown error")
                        out.dead.append(
                            dead_letter(
                                self.name, entry, f"poison: delivered {count} times; {last}"
                            )
                        )
                    with contextlib.suppress(*TRANSIENT_ERRORS):
                        async with self._lock:
                            await self.bus.commit(out, [e for e, _ in poison])
                        self._count([], out)
                if retry:
                    m.RECLAIMED.labels(self.name, stream).inc(len(retry))
                    self.log.info("reclaimed %d idle entries from %s", len(retry), stream)
                    # One at a time, so one poison entry cannot hold its neighbours back.
                    for entry in retry:
                        with contextlib.suppress(*TRANSIENT_ERRORS):
                            await self._process([entry])
            await self._sleep(self.bus.settings.claim_interval_s)
