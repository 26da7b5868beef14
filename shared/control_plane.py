"""The control plane of the runtime: config versions and trading control.

A mixin of ``Service``: ``_listen`` follows ``param.updated`` and ``trading.control``
(pub/sub, at-most-once, so it also re-syncs from Redis), ``_apply_config`` swaps a
validated config in between two batches, ``apply_control`` applies a trading-control
command within a batch (a breaker's, or one from ``trading.control``), ``_observe`` keeps
lag, Redis reachability and the trading state current, and ``health`` is ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from shared import metrics as m
from shared.backoff import Backoff
from shared.bus import TRANSIENT_ERRORS, Bus, Outbox
from shared.config import (
    KEY_PREFIX,
    ComponentConfig,
    ConfigError,
    StoredConfig,
    fetch_version,
    validate,
)
from shared.control import (
    TRADING_KEY,
    ControlCommand,
    TradingState,
    load_state,
    parse_command,
    save_state,
    state_after,
)
from shared.merge import EventMerge
from shared.messages import PARAM_APPLIED, PARAM_REJECTED, PARAM_UPDATED, TRADING_CONTROL

APPLIED_KEY = f"{KEY_PREFIX}:config:applied"

C = TypeVar("C", bound=ComponentConfig)


class ControlPlane(Generic[C]):
    """Config and control for a ``Service`` (the attributes below are the service's)."""

    name: ClassVar[str]
    channels: ClassVar[tuple[str, ...]]
    persists_trading_state: ClassVar[bool]
    config: C
    config_version: int
    config_hash: str
    trading: TradingState
    r: Redis
    bus: Bus
    log: logging.Logger
    stopping: bool
    redis_ok: bool
    started_ns: int
    processed: int
    dead_lettered: int
    handler_errors: int
    lag: dict[str, tuple[int, int]]
    merge: EventMerge | None
    _wm_out: int
    _subscribed: asyncio.Event
    _lock: asyncio.Lock
    _last_beat: float
    _refused_version: int | None

    if TYPE_CHECKING:

        @property
        def comp(self) -> str: ...

        def on_config(self, config: C) -> None: ...

        def on_control(self, cmd: ControlCommand, out: Outbox) -> None: ...

        async def on_channel(self, channel: str, data: str) -> None: ...

        def health_details(self) -> dict[str, Any]: ...

        def committed(self, wm_ns: int = 0) -> None: ...

        async def _sleep(self, seconds: float) -> None: ...

        def _redis_up(self, ok: bool, exc: BaseException | None = None) -> None: ...

        async def _commit(
            self, out: Outbox, entries: list[Any], *, prefetch: bool | None = None
        ) -> None: ...

        def _count(self, entries: list[Any], out: Outbox) -> None: ...

    async def _listen(self) -> None:
        channels = (PARAM_UPDATED, TRADING_CONTROL, *self.channels)
        backoff = Backoff()
        while not self.stopping:
            pubsub: PubSub = self.r.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                self._subscribed.set()
                # Messages may have been missed while unsubscribed: resync from Redis.
                await self._sync_config()
                await self._sync_trading()
                backoff.reset()
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
                await self._sleep(backoff.next())
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
            before = self.config
            restart_only = before.restart_only_changes(cfg)
            self.on_config(cast(C, cfg))
            if self.config is before:  # unless on_config set its own (adjusted) copy
                self.config = cast(C, cfg)
            if self.bus is not None:
                self.bus.settings = cfg.bus
            self.config_version, self.config_hash = stored.version, stored.hash
        m.CONFIG_VERSION.labels(self.name, self.comp).set(stored.version)
        m.CONFIG_RELOADS.labels(self.name, self.comp).inc()
        note: dict[str, Any] = {
            "service": self.name,
            "component": self.comp,
            "version": stored.version,
            "hash": stored.hash,
            "applied_ts_ns": time.time_ns(),
        }
        if restart_only:  # applied for the rest; these wait for a restart
            note["restart_only"] = restart_only
            self.log.warning(
                "config %s version %d: %s take effect at the next restart",
                self.comp,
                stored.version,
                ", ".join(restart_only),
            )
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

    def apply_control(self, cmd: ControlCommand, out: Outbox, *, announce: bool = False) -> None:
        """Apply a trading-control command within the batch being handled (a breaker in
        a handler, or ``trading.control``): the state changes at once and
        ``on_control`` runs. ``announce``: also save the state and tell every service,
        in the batch's own transaction (the published copy comes back and changes
        nothing)."""
        st = state_after(cmd)
        self.trading = st
        m.TRADING_HALTED.labels(self.name).set(1 if st.halted else 0)
        self.on_control(cmd, out)
        if announce:
            mapping = st.as_dict()
            note = orjson.dumps(cmd.model_dump())
            out.call(lambda pipe: pipe.hset(TRADING_KEY, mapping=mapping))  # type: ignore[arg-type]
            out.call(lambda pipe: pipe.publish(TRADING_CONTROL, note))
            self.log.warning("%s: %s (%s)", cmd.source or "control", cmd.action, cmd.reason)

    async def _apply_control(self, cmd: ControlCommand) -> None:
        out = Outbox()
        async with self._lock:
            self.apply_control(cmd, out)
        if self.persists_trading_state:
            await save_state(self.r, self.trading)
        if len(out):
            async with self._lock:
                await self._commit(out, [])
                self.committed()
            self._count([], out)
        self.log.warning(
            "trading.control %s (%s): state %s", cmd.action, cmd.reason, self.trading.state
        )

    # ---- observing -------------------------------------------------------------------

    def observe_interval_s(self) -> float:
        """How often the observe pass runs (wall clock: monitoring, never a decision)."""
        return 1.0

    async def on_observe(self) -> None:
        """A service's own monitoring, once per observe pass (telemetry's XINFO poll)."""

    async def _observe(self) -> None:
        """Every second: consumer lag and pending per input, Redis reachability, a resync
        of the trading state (a control message can be missed in a reconnect), then the
        service's ``on_observe``."""
        while not self.stopping:
            try:
                self.lag = await self.bus.lag()
                for stream, (lag, pending) in self.lag.items():
                    m.CONSUMER_LAG.labels(self.name, stream).set(max(lag, 0))
                    m.CONSUMER_PENDING.labels(self.name, stream).set(pending)
                await self._sync_trading()
                await self.on_observe()
                if not self.redis_ok:
                    self._redis_up(True)
            except TRANSIENT_ERRORS as exc:
                self._redis_up(False, exc)
            except Exception:
                self.log.exception("observe failed")
            await self._sleep(self.observe_interval_s())

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
        if self.merge is not None:
            body["event_time"] = {
                "out_watermark_ns": self._wm_out,
                "upstreams_ns": dict(self.merge.wm),
                "held": len(self.merge),
                "late": self.merge.late,
                "stepped_over": sorted(self.merge.forced),
            }
        body.update(self.health_details())
        return ok, body
