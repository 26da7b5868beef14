"""The one lifecycle every service shares; a service is a handler plus a config schema.

A ``Service`` reads as its life: ``main`` starts the HTTP app and the loops,
``_consume_loop`` reads batches, ``_process`` handles one batch and commits outputs
with acks, ``_reclaim_loop`` takes over stuck entries, ``_listen`` applies config
updates and trading control between batches, ``_observe`` keeps lag and health
current, and ``stop``/``_close`` shut down cleanly.

Subclasses set ``name``, ``inputs`` and override the hooks: ``on_message`` (sync: a
whole batch is handled with no await in between, so a config swap can never land in
the middle of one), ``on_batch_end``, ``run_source``, ``on_config``, ``on_control``,
``on_start``, ``health_details``, ``add_routes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from shared import metrics as m
from shared.bus import TRANSIENT_ERRORS, Bus, Entry, Outbox, connect, dead_letter, redis_url
from shared.config import (
    KEY_PREFIX,
    ComponentConfig,
    ConfigError,
    StoredConfig,
    fetch_version,
    load_file,
    validate,
)
from shared.control import (
    ControlCommand,
    TradingState,
    load_state,
    parse_command,
    save_state,
    state_after,
)
from shared.messages import PARAM_APPLIED, PARAM_REJECTED, PARAM_UPDATED, TRADING_CONTROL

APPLIED_KEY = f"{KEY_PREFIX}:config:applied"


class Service:
    """Base class: the lifecycle. Subclasses supply the handler and the schema."""

    name: ClassVar[str] = "service"
    component: ClassVar[str | None] = None  # config component; defaults to ``name``
    inputs: ClassVar[tuple[str, ...]] = ()
    channels: ClassVar[tuple[str, ...]] = ()  # extra pub/sub channels -> on_channel
    persists_trading_state: ClassVar[bool] = False

    def __init__(self, config: ComponentConfig | None = None) -> None:
        self.config: ComponentConfig = config if config is not None else load_file(self.comp)
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

    def on_config(self, config: ComponentConfig) -> None:
        """A new config, applied between batches."""
        self.config = config

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
        self.bus = Bus(self.r, self.name, self.inputs, settings)
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
        delay = 0.05
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
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)

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
        delay = 0.05
        while not self.stopping:
            try:
                await fn()
                return
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)
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
        delay = 0.05
        # A read sent ahead with the last commit is still handled after stop(): its
        # entries were delivered to this consumer.
        while not self.stopping or self.bus.prefetched is not None:
            self.beat()
            if not self.inputs:
                await self._sleep(0.5)
                continue
            try:
                entries = await self.bus.read(own_pending=own_pending)
                if own_pending and not entries:
                    own_pending = False
                    self._own_done.set()
                    continue
                if entries:
                    settings = self.bus.settings
                    gather = settings.batch_interval_ms and len(entries) < settings.batch_size
                    prefetch = not own_pending and not self.stopping and not gather
                    ok = await self._process(entries, prefetch=prefetch)
                    if own_pending and not ok:
                        own_pending = False  # a poison batch: leave it to the reclaimer
                        self._own_done.set()
                    if gather and not own_pending:
                        await self._sleep(settings.batch_interval_ms / 1000)
                if not self.redis_ok:
                    self._redis_up(True)
                delay = 0.05
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
                own_pending = True  # a write may have failed: re-read what is ours
                self._own_done.clear()
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception as exc:
                if "NOGROUP" in str(exc):  # Redis lost its data (restart without AOF)
                    self.log.warning("consumer group missing; recreating")
                    with contextlib.suppress(Exception):
                        await self.bus.ensure_groups()
                else:
                    self.log.exception("consume loop error")
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _process(self, entries: list[Entry], *, prefetch: bool | None = None) -> bool:
        """Handle a batch and commit its outputs with its acks. False if the handler
        raised: then nothing is written and the entries stay pending.

        ``prefetch`` is the consume loop's (see ``Bus.commit``); others leave it None."""
        async with self._lock:
            if self._state_stale:
                await self.on_batch_failed()
                self._state_stale = False
            t0 = time.perf_counter()
            out = Outbox()
            try:
                for entry in entries:
                    if entry.message is not None:
                        self.on_message(entry, out)
                    elif entry.error != "deleted":
                        out.dead.append(dead_letter(self.name, entry, entry.error or "undecodable"))
                self.on_batch_end(out)
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
            await self._commit(out, entries, prefetch=prefetch)
            self._count(entries, out)
            self._m_batch_latency.observe(time.perf_counter() - t0)
            self._m_batch_size.observe(len(entries))
            return True

    async def _commit(
        self, out: Outbox, entries: list[Entry], *, prefetch: bool | None = None
    ) -> None:
        try:
            await self.bus.commit(out, entries, prefetch=prefetch)
        except BaseException:
            self._state_stale = True
            raise
        self.on_committed()

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
        returned callable for the outcome. Counted in the metrics once it landed."""
        landed = self.bus.publish_now(messages)

        async def outcome() -> None:
            await landed()
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
                    retry, poison = await self.bus.reclaim(stream)
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

    # ---- config and control ----------------------------------------------------------

    async def _listen(self) -> None:
        channels = (PARAM_UPDATED, TRADING_CONTROL, *self.channels)
        delay = 0.05
        while not self.stopping:
            pubsub: PubSub = self.r.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                self._subscribed.set()
                # Messages may have been missed while unsubscribed: resync from Redis.
                await self._sync_config()
                await self._sync_trading()
                delay = 0.05
                synced = time.monotonic()
                while not self.stopping:
                    msg = await pubsub.get_message(timeout=0.5)
                    if msg is not None:
                        await self._on_pubsub(msg["channel"], msg["data"])
                    if time.monotonic() - synced > 1.0:
                        # Pub/sub is at-most-once: a dropped note must not leave this
                        # service on an old version, so converge on the current one anyway.
                        await self._sync_config()
                        synced = time.monotonic()
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
                await self._sleep(delay)
                delay = min(delay * 2, 2.0)
            except Exception:
                self.log.exception("pub/sub listener error")
                await self._sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _on_pubsub(self, channel: str, data: str) -> None:
        if channel == PARAM_UPDATED:
            try:
                note = orjson.loads(data)
                if not isinstance(note, dict):
                    raise TypeError("not a JSON object")
                if note.get("component") == self.comp:
                    announced = StoredConfig.from_note(note)  # malformed: ignored
                    if announced is None:
                        # A note without the content (sent by hand): take the current
                        # version from the store.
                        await self._sync_config()
                    elif announced.version > self.config_version:
                        # The store script's own note: it is the stored version, so no
                        # round trip to fetch it. Notes arrive in version order; one
                        # that was never stored is undone by the next resync.
                        await self._apply_config(announced)
            except (ValueError, KeyError, TypeError) as exc:
                self.log.warning("ignored malformed param.updated %r: %s", data[:200], exc)
        elif channel == TRADING_CONTROL:
            try:
                cmd = parse_command(data)
            except ValueError as exc:
                self.log.warning("ignored trading.control %r: %s", data[:200], exc)
                return
            await self._apply_control(cmd)
        else:
            await self.on_channel(channel, data)

    async def _sync_config(self, version: int | None = None) -> None:
        """Apply the stored version (the current one when None) unless it is ours.

        Also when it is older than ours: every apply runs in this one task, so ours can
        only be ahead of the store if the note it came from was never stored (forged) or
        Redis lost writes; the store is the truth either way."""
        stored = await fetch_version(self.r, self.comp, version)
        if stored is None or (stored.version, stored.hash) == (
            self.config_version,
            self.config_hash,
        ):
            return
        await self._apply_config(stored)

    async def _apply_config(self, stored: StoredConfig) -> None:
        """Validate a stored version, swap it in between two batches, announce it."""
        if stored.version == self._refused_version:
            return  # refused once already: say so once, not at every resync
        try:
            cfg = validate(self.comp, stored.config)
        except ConfigError as exc:
            self._refused_version = stored.version
            self.log.error("version %d refused: %s", stored.version, exc)
            await self.r.publish(
                PARAM_REJECTED,
                orjson.dumps(
                    {
                        "component": self.comp,
                        "version": stored.version,
                        "service": self.name,
                        "reason": str(exc),
                    }
                ),
            )
            return
        async with self._lock:  # between batches
            self.on_config(cfg)
            self.config = cfg
            if self.bus is not None:
                self.bus.settings = cfg.bus
            self.config_version, self.config_hash = stored.version, stored.hash
        m.CONFIG_VERSION.labels(self.name, self.comp).set(stored.version)
        m.CONFIG_RELOADS.labels(self.name, self.comp).inc()
        note = {
            "service": self.name,
            "component": self.comp,
            "version": stored.version,
            "hash": stored.hash,
            "applied_ts_ns": time.time_ns(),
        }
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.hset(APPLIED_KEY, self.name, orjson.dumps(note))
            pipe.publish(PARAM_APPLIED, orjson.dumps(note))
            await pipe.execute()
        self.log.info(
            "config %s version %d applied (hash %s)", self.comp, stored.version, stored.hash
        )

    async def _sync_trading(self) -> None:
        st = await load_state(self.r)
        if st != self.trading and st.ts_ns >= self.trading.ts_ns:
            self.trading = st
            m.TRADING_HALTED.labels(self.name).set(1 if st.halted else 0)

    async def _apply_control(self, cmd: ControlCommand) -> None:
        st = state_after(cmd)
        out = Outbox()
        async with self._lock:
            self.trading = st
            m.TRADING_HALTED.labels(self.name).set(1 if st.halted else 0)
            self.on_control(cmd, out)
        if self.persists_trading_state:
            await save_state(self.r, st)
        if len(out):
            async with self._lock:
                await self._commit(out, [])
            self._count([], out)
        self.log.warning("trading.control %s (%s): state %s", cmd.action, cmd.reason, st.state)

    # ---- observing -------------------------------------------------------------------

    async def _observe(self) -> None:
        """Every second: consumer lag and pending per input, Redis reachability, and a
        resync of the trading state (a control message can be missed in a reconnect)."""
        while not self.stopping:
            try:
                self.lag = await self.bus.lag()
                for stream, (lag, pending) in self.lag.items():
                    m.CONSUMER_LAG.labels(self.name, stream).set(max(lag, 0))
                    m.CONSUMER_PENDING.labels(self.name, stream).set(pending)
                await self._sync_trading()
                if not self.redis_ok:
                    self._redis_up(True)
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
            except Exception:
                self.log.exception("observe failed")
            await self._sleep(1.0)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): healthy when the loop beat recently and Redis answers."""
        loop_age_s = time.monotonic() - self._last_beat
        alive = loop_age_s < max(5.0, self.bus.settings.block_ms / 1000 * 5) if self.bus else False
        ok = alive and self.redis_ok
        body: dict[str, Any] = {
            "service": self.name,
            "status": "ok" if ok else ("redis_down" if alive else "stalled"),
            "pid": os.getpid(),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 1),
            "loop_age_s": round(loop_age_s, 3),
            "redis": "up" if self.redis_ok else "down",
            "consumer": self.bus.consumer if self.bus else None,
            "processed": self.processed,
            "dlq": self.dead_lettered,
            "handler_errors": self.handler_errors,
            "lag": {s: {"lag": lag, "pending": p} for s, (lag, p) in self.lag.items()},
            "config": {
                "component": self.comp,
                "version": self.config_version,
                "hash": self.config_hash,
            },
            "trading_state": self.trading.state,
        }
        body.update(self.health_details())
        return ok, body
