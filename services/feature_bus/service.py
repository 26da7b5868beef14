"""feature_bus: market data in, ``md.ticks`` and ``features`` out.

Wiring only. Every quote, whatever its source, goes through ``QuotePipeline`` (quality
gate, then features): quotes on ``md.raw`` (``edgebus replay``, any external feeder)
are read in the consumer group; the synthetic market or the websocket feed (``source``
in conf/feature_bus.yml) run as this service's source and publish directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from services.feature_bus import metrics as fm
from services.feature_bus.config import FeatureBusConfig, with_source_override
from services.feature_bus.pipeline import QuotePipeline
from services.feature_bus.synthetic import SyntheticMarket
from services.feature_bus.websocket import SOURCE as WS_SOURCE
from services.feature_bus.websocket import BookTickerFeed
from shared.bus import Entry, Outbox, dead_letter
from shared.config import KEY_PREFIX
from shared.messages import (
    DLQ,
    FEATURES,
    MD_RAW,
    MD_TICKS,
    ORDERS,
    SIGNALS,
    DeadLetter,
    Message,
    RawQuote,
)
from shared.service import Service

# The streams whose consumers the synthetic source waits for (backpressure).
DOWNSTREAM = (MD_TICKS, FEATURES, SIGNALS, ORDERS)

# Per replay session counters (published, dlq, flagged), read by the replay summary.
SESSION_KEY = KEY_PREFIX + ":feature_bus:session:{}"
SESSION_TTL_S = 86_400


class FeatureBus(Service[FeatureBusConfig]):
    name: ClassVar[str] = "feature_bus"
    inputs: ClassVar[tuple[str, ...]] = (MD_RAW,)
    # md.raw in event-time order under the replay's watermarks (``wm.replay``).
    upstreams: ClassVar[dict[str, str]] = {MD_RAW: "replay"}
    has_source: ClassVar[bool] = True

    def __init__(self, config: FeatureBusConfig | None = None) -> None:
        super().__init__(config)
        self.config = with_source_override(self.config)  # $EDGEBUS_SOURCE, if set
        self.market = SyntheticMarket(self.config)
        self.pipeline = QuotePipeline(self.config.features, self.config.quality)
        self.ticks_published = 0
        self.feed: BookTickerFeed | None = None
        self._session_counts: dict[str, dict[str, int]] = {}
        self._lag_checked = 0.0
        self._lag_full = False
        # The live feed's state for /health (wall clock: liveness, never a decision):
        # "connecting", "connected", "stale" or "disconnected" (with why), and the
        # monotonic time of each symbol's last quote (or of the connection).
        self.feed_state = ("connecting", "")
        self._heard: dict[str, float] = {}

    def on_config(self, config: FeatureBusConfig) -> None:
        config = with_source_override(config)
        old = self.config
        if (config.symbols, config.seed, config.regime_ticks) != (
            old.symbols,
            old.seed,
            old.regime_ticks,
        ):
            self.market = SyntheticMarket(config)
        if config.features != old.features or config.quality != old.quality:
            self.pipeline = QuotePipeline(config.features, config.quality)
        self.config = config  # with the override: the runtime keeps what on_config set

    # ---- the one path: quote -> quality gate -> tick + features ------------------------

    def handle_quote(
        self, q: RawQuote, out: list[Message], dead: list[DeadLetter], entry: Entry | None = None
    ) -> str | None:
        """Run one quote through the pipeline; append its tick and features (returns
        their quality flags, "" when clean) or a dead letter (returns None)."""
        metrics = fm.of_source(q.source)
        metrics.quotes.inc()
        quality = self._through_pipeline(q, out, dead, entry)
        metrics.quality_score.set(self.pipeline.score(q.source))
        return quality

    def handle_quotes(
        self, quotes: list[RawQuote], out: list[Message], dead: list[DeadLetter]
    ) -> None:
        """``handle_quote`` for a source's batch, with the per-source counter and gauge
        updated once per batch rather than per quote."""
        for q in quotes:
            self._through_pipeline(q, out, dead, None)
        sources = {q.source for q in quotes}
        for source in sources:
            n = len(quotes) if len(sources) == 1 else sum(q.source == source for q in quotes)
            metrics = fm.of_source(source)
            metrics.quotes.inc(n)
            metrics.quality_score.set(self.pipeline.score(source))

    def _through_pipeline(
        self,
        q: RawQuote,
        out: list[Message],
        dead: list[DeadLetter],
        entry: Entry | None,
    ) -> str | None:
        outcome = self.pipeline.process(q)
        if outcome.reason is not None:
            fm.FAILURES.labels(q.source, fm.reason_class(outcome.reason)).inc()
            if entry is None:
                entry = Entry(q.source, f"{q.symbol}@{q.ts_ns}", _fields(q))
            dead.append(dead_letter(self.name, entry, outcome.reason))
            return None
        for flag in outcome.flags:
            fm.FLAGS.labels(q.source, q.symbol, flag).inc()
        assert outcome.tick is not None and outcome.features is not None
        out.append(outcome.tick)
        out.append(outcome.features)
        if q.recv_ts_ns:
            # Exchange -> here, for a live feed (recv_ts_ns set): wall clock minus the
            # exchange's stamp; latency only, never a decision.
            fm.LATENCY.observe(q.source, max(0.0, (time.time_ns() - q.ts_ns) / 1e9))
        return outcome.tick.quality

    def on_message(self, entry: Entry, out: Outbox) -> None:
        q = entry.message
        assert isinstance(q, RawQuote)
        produced: list[Message] = []
        quality = self.handle_quote(q, produced, out.dead, entry)
        for msg in produced:
            out.emit(msg)
        if q.session:
            counts = self._session_counts.setdefault(q.session, {})
            key = "dlq" if quality is None else ("flagged" if quality else "clean")
            counts[key] = counts.get(key, 0) + 1

    def on_batch_end(self, out: Outbox) -> None:
        # Counted in the same transaction as the outputs and acks: exact even on retries.
        for session, counts in self._session_counts.items():
            key = SESSION_KEY.format(session)

            def op(pipe: Any, key: str = key, counts: dict[str, int] = counts) -> None:
                for field, n in counts.items():
                    pipe.hincrby(key, field, n)
                pipe.expire(key, SESSION_TTL_S)

            out.call(op)
        self._session_counts = {}

    def features_of(self, quotes: list[RawQuote]) -> list[Message]:
        """Ticks and features of ``quotes`` through the one path, without I/O (the
        in-process benchmark uses it); rejected quotes are counted, not returned."""
        out: list[Message] = []
        dead: list[DeadLetter] = []
        self.handle_quotes(quotes, out, dead)
        self.dead_lettered += len(dead)
        return out

    # ---- sources ------------------------------------------------------------------------

    async def run_source(self) -> None:
        """The configured source; a hot-reloaded ``source`` switches between them."""
        while not self.stopping:
            if self.config.source == "synthetic":
                await self._run_synthetic()
            elif self.config.source == "websocket":
                await self._run_websocket()
            else:  # "replay": nothing of our own; md.raw is read by the consume loop
                self.beat()
                await asyncio.sleep(0.2)

    async def _emit(
        self, quotes: list[RawQuote], before: Callable[[], Awaitable[None]] | None = None
    ) -> Callable[[], Awaitable[None]]:
        """Handle ``quotes`` and write their ticks and features; returns the wait for
        them to land. ``before`` (the previous batch's wait) is awaited after handling
        and before writing: a batch is computed while Redis appends the one before."""
        out: list[Message] = []
        dead: list[DeadLetter] = []
        async with self._lock:  # the same lock as batches and config swaps
            self.handle_quotes(quotes, out, dead)
        if before is not None:
            await before()
        items: list[Message | tuple[str, Message]] = list(out)
        items.extend((DLQ, d) for d in dead)
        landed = self.publish_now(items)

        async def outcome() -> None:
            if items:
                await landed()
            self.dead_lettered += len(dead)
            self.ticks_published += len(out) // 2

        return outcome

    async def _run_synthetic(self) -> None:
        """Publish at ``ticks_per_s`` (total), catching up in batches when late. The
        next batch is computed while Redis appends the one before (one in flight)."""
        fm.watch_source("synthetic", (spec.symbol for spec in self.config.symbols), list)
        started = time.monotonic()
        sent = 0
        landed: Callable[[], Awaitable[None]] | None = None  # the batch in flight
        while not self.stopping and self.config.source == "synthetic":
            self.beat()
            rate = self.config.ticks_per_s
            if rate > 0:
                due = int((time.monotonic() - started) * rate) - sent
                if due <= 0:
                    if landed is not None:
                        await landed()
                        landed = None
                    await asyncio.sleep(min(0.005, 1.0 / rate))
                    continue
                n = min(due, self.config.max_batch_ticks)
            else:
                n = self.config.max_batch_ticks
            if await self._downstream_full():
                await asyncio.sleep(0.005)
                continue
            quotes = list(self.market.quotes(n, trace_ts_ns=time.time_ns()))  # event-clocked
            landed = await self._emit(quotes, landed)
            sent += n
            if rate > 0 and due > 10 * self.config.max_batch_ticks:
                started, sent = time.monotonic(), 0  # far behind (a Redis outage): do not burst
        if landed is not None:
            await landed()

    async def _downstream_full(self) -> bool:
        """Backpressure for the synthetic source: as fast as the pipeline takes, not
        faster (lag is read at most every 50 ms; the live feed is never held back)."""
        limit = self.config.max_downstream_lag
        if not limit:
            return False
        now = time.monotonic()
        if now - self._lag_checked < 0.05:
            return self._lag_full
        self._lag_checked = now
        self._lag_full = await self.bus.max_group_lag(DOWNSTREAM) > limit
        return self._lag_full

    def source_clock_ns(self) -> int:
        """The live feed's clock, for the heartbeat: its quotes are stamped by the
        exchange or on receipt, so it is the wall clock, less
        ``websocket.allowed_lateness_ms`` for quotes still on their way (docs/feature_bus.md,
        "A live feed's clock"). Replay and the synthetic market have their own event
        clocks, moved by their data only: 0."""
        if self.config.source != "websocket" or self.feed is None:
            return 0
        return time.time_ns() - int(self.config.websocket.allowed_lateness_ms * 1e6)

    async def _run_websocket(self) -> None:
        self.feed = feed = BookTickerFeed(self.config.websocket)
        self.feed_state, self._heard = ("connecting", ""), {}
        fm.CONNECTED.labels(WS_SOURCE).set(0)
        fm.watch_source(WS_SOURCE, self.config.websocket.symbols.values(), self.feed_problems)
        async for ev in feed.events():
            if self.stopping or self.config.source != "websocket":
                return
            if ev.kind == "quote" and ev.quote is not None:
                q = ev.quote
                self._heard[q.symbol] = time.monotonic()
                if q.ts_ns <= self._wm_out:  # behind the watermark the clock promised
                    fm.LATE_QUOTES.labels(WS_SOURCE).inc()
                await (await self._emit([q]))()
            elif ev.kind == "bad_frame":
                fm.QUOTES.labels(WS_SOURCE).inc()
                fm.FAILURES.labels(WS_SOURCE, fm.reason_class(ev.reason)).inc()
                entry = Entry("ws:" + WS_SOURCE, "", {"frame": ev.frame})
                await self.publish([(DLQ, dead_letter(self.name, entry, ev.reason))])
                self.dead_lettered += 1
            elif ev.kind == "connected":
                self.feed_state = ("connected", "")
                now = time.monotonic()  # silence is counted from the connection
                self._heard = dict.fromkeys(self.config.websocket.symbols.values(), now)
                fm.CONNECTED.labels(WS_SOURCE).set(1)
                if feed.reconnects:
                    fm.RECONNECTS.labels(WS_SOURCE).inc()
                self.log.info("websocket connected to %s", self.config.websocket.url)
            elif ev.kind == "stale":
                self.feed_state = ("stale", ev.reason)
                self.log.warning("websocket stale: %s; reconnecting", ev.reason)
            elif ev.kind == "disconnected":
                self.feed_state = ("disconnected", ev.reason)
                fm.CONNECTED.labels(WS_SOURCE).set(0)
                self.log.warning("websocket disconnected: %s", ev.reason)

    def feed_problems(self) -> list[str]:
        """Why the live feed is degraded, empty when it is not: the websocket is not
        connected (or was found stale), or a symbol has had no quote for longer than
        ``quality.stale_ms``. The synthetic market and replay are never stale: their
        time moves with their data."""
        if self.config.source != "websocket" or self.feed is None:
            return []
        state, why = self.feed_state
        if state != "connected":
            return [f"websocket {state}" + (f": {why}" if why else "")]
        limit_s = self.config.quality.stale_ms / 1000
        now = time.monotonic()
        return [
            f"{symbol}: no quote for {now - at:.1f} s (quality.stale_ms {limit_s:g} s)"
            for symbol, at in sorted(self._heard.items())
            if now - at > limit_s
        ]

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``/health``, "degraded" (with the reasons) while the live feed is stale: the
        process is alive (HTTP 200, nothing to restart), the data are not."""
        ok, body = super().health()
        problems = self.feed_problems()
        if problems:
            body["degraded"] = problems
            if body["status"] == "ok":
                body["status"] = "degraded"
        return ok, body

    def health_details(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ticks_published": self.ticks_published,
            "source": self.config.source,
            "quality_score": {s: round(v.value, 4) for s, v in self.pipeline.scores.items()},
        }
        if self.feed is not None:
            doc["websocket"] = {
                "connections": self.feed.connections,
                "reconnects": self.feed.reconnects,
            }
        return doc


def _fields(q: RawQuote) -> dict[str, str]:
    return {k: str(v) for k, v in q.to_fields().items()}


SERVICE = FeatureBus
