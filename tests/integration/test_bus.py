"""The shared runtime against a real Redis: delivery, atomic output+ack, reclaim,
dead-lettering, MAXLEN, graceful shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import pytest
from redis.asyncio import Redis

from shared.bus import Bus, Entry, Outbox
from shared.config import BusSettings, ComponentConfig
from shared.messages import DLQ, MD_TICKS, SIGNALS, Signal, Tick
from shared.service import Service
from tests.support import running, wait_for

pytestmark = pytest.mark.integration


class EchoConfig(ComponentConfig):
    pass


class Echo(Service):
    """md.ticks -> one signal per tick; can be told to fail on a symbol."""

    name: ClassVar[str] = "echo"
    inputs: ClassVar[tuple[str, ...]] = (MD_TICKS,)

    def __init__(self, bus: BusSettings | None = None, fail_on: str | None = None) -> None:
        super().__init__(EchoConfig(bus=bus or BusSettings(block_ms=50)))
        self.fail_on = fail_on
        self.seen: list[str] = []

    @property
    def comp(self) -> str:  # no component file: never fetch or reload
        return "echo"

    async def _sync_config(self, version: int | None = None) -> None:
        return None

    def on_message(self, entry: Entry, out: Outbox) -> None:
        tick = entry.message
        assert isinstance(tick, Tick)
        if tick.symbol == self.fail_on:
            raise RuntimeError("boom")
        self.seen.append(entry.entry_id)
        out.emit(
            Signal(
                trace_ts_ns=tick.trace_ts_ns,
                symbol=tick.symbol,
                ts_ns=tick.ts_ns,
                model_id="echo",
                horizon="1m",
                edge_bps=1.0,
                confidence=0.5,
            )
        )


def tick(symbol: str = "BTC-USD", i: int = 0) -> dict[str, Any]:
    return Tick(
        trace_ts_ns=time.time_ns(),
        symbol=symbol,
        ts_ns=1_700_000_000_000_000_000 + i,
        bid=100.0,
        ask=100.1,
        bid_size=1.0,
        ask_size=2.0,
    ).to_fields()


async def pending(r: Redis, stream: str, group: str) -> int:
    return int((await r.xpending(stream, group))["pending"])


async def test_every_entry_is_delivered_once_and_acked_with_its_output(
    r: Redis, redis_url: str
) -> None:
    for i in range(250):
        await r.xadd(MD_TICKS, tick(i=i))
    async with running(Echo(), redis_url) as svc:
        await wait_for(lambda: r.xlen(SIGNALS), what="signals")
        await wait_for(lambda: len(svc.seen) == 250, what="250 handled")
        await wait_for(lambda: svc.processed == 250, what="committed")
    assert len(set(svc.seen)) == 250
    assert await r.xlen(SIGNALS) == 250
    assert await pending(r, MD_TICKS, "echo") == 0


async def test_a_raising_handler_writes_nothing_and_leaves_the_batch_pending(
    r: Redis, redis_url: str
) -> None:
    for i in range(5):
        await r.xadd(MD_TICKS, tick("OK", i))
    await r.xadd(MD_TICKS, tick("BAD", 99))
    svc = Echo(BusSettings(block_ms=50, claim_idle_ms=60_000), fail_on="BAD")
    async with running(svc, redis_url):
        await wait_for(lambda: svc.handler_errors >= 1, what="handler error")
        # the five good ticks shared the batch: none of their outputs may be written
        assert await r.xlen(SIGNALS) == 0
        assert await pending(r, MD_TICKS, "echo") == 6


async def test_poison_entry_goes_to_dlq_after_max_deliveries_and_neighbours_get_through(
    r: Redis, redis_url: str
) -> None:
    await r.xadd(MD_TICKS, tick("OK", 1))
    await r.xadd(MD_TICKS, tick("BAD", 2))
    await r.xadd(MD_TICKS, tick("OK", 3))
    settings = BusSettings(block_ms=50, claim_idle_ms=50, claim_interval_s=0.05, max_deliveries=2)
    async with running(Echo(settings, fail_on="BAD"), redis_url):
        entries = await wait_for(lambda: r.xrange(DLQ), timeout_s=15, what="dlq entry")
        await wait_for(lambda: r.xlen(SIGNALS), what="good ticks through")
        await wait_for(lambda: _zero(pending(r, MD_TICKS, "echo")), what="nothing pending")
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields["source_stream"] == MD_TICKS
    assert fields["service"] == "echo"
    assert "poison" in fields["reason"] and "boom" in fields["reason"]
    assert await r.xlen(SIGNALS) == 2


async def _zero(coro: Any) -> bool:
    return (await coro) == 0


async def test_garbage_goes_to_dlq_with_a_reason_and_the_service_goes_on(
    r: Redis, redis_url: str
) -> None:
    bad_id = await r.xadd(MD_TICKS, {"symbol": "X", "bid": "not-a-number"})
    await r.xadd(MD_TICKS, tick())
    async with running(Echo(), redis_url) as svc:
        await wait_for(lambda: svc.processed == 2, what="both processed")
    dlq = await r.xrange(DLQ)
    assert len(dlq) == 1
    fields = dlq[0][1]
    assert fields["entry_id"] == bad_id
    assert fields["source_stream"] == MD_TICKS
    assert "bid" in fields["reason"] and "ts_ns" in fields["reason"]
    assert await r.xlen(SIGNALS) == 1
    assert await pending(r, MD_TICKS, "echo") == 0


async def test_a_crashed_consumers_pending_entries_are_reclaimed(r: Redis, redis_url: str) -> None:
    settings = BusSettings(block_ms=50, claim_idle_ms=100, claim_interval_s=0.05)
    crashed = Bus(r, "echo", [MD_TICKS], settings, consumer="echo@crashed")
    await crashed.ensure_groups()
    for i in range(10):
        await r.xadd(MD_TICKS, tick(i=i))
    taken = await crashed.read()  # delivered to the crashed consumer, never acked
    assert len(taken) == 10
    svc = Echo(settings)
    async with running(svc, redis_url):
        await wait_for(lambda: len(svc.seen) == 10, what="reclaimed and handled")
        await wait_for(lambda: _zero(pending(r, MD_TICKS, "echo")), what="all acked")
    assert sorted(svc.seen) == sorted(e.entry_id for e in taken)
    assert await r.xlen(SIGNALS) == 10


async def test_a_restarted_consumer_handles_its_own_idle_pending_once(
    r: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a crash, the same consumer re-reads its own pending while the reclaimer would
    find the very same entries idle: each must be handled once, not by both."""
    monkeypatch.setenv("EDGEBUS_CONSUMER", "echo@same")
    settings = BusSettings(block_ms=50, claim_idle_ms=50, claim_interval_s=0.01)
    before = Bus(r, "echo", [MD_TICKS], settings, consumer="echo@same")
    await before.ensure_groups()
    for i in range(50):
        await r.xadd(MD_TICKS, tick(i=i))
    taken = await before.read()  # delivered, never acked: the process "died"
    assert len(taken) == 50
    await asyncio.sleep(0.06)  # idle past claim_idle_ms: the reclaimer may take them
    svc = Echo(settings)
    async with running(svc, redis_url):
        await wait_for(lambda: _zero(pending(r, MD_TICKS, "echo")), what="all acked")
    assert sorted(svc.seen) == sorted(e.entry_id for e in taken)  # each once
    assert await r.xlen(SIGNALS) == 50


async def test_a_batch_interval_gathers_entries_into_one_batch(r: Redis, redis_url: str) -> None:
    class Counting(Echo):
        def __init__(self) -> None:
            super().__init__(BusSettings(block_ms=50, batch_interval_ms=1_000))
            self.batches: list[int] = []
            self._n = 0

        def on_message(self, entry: Entry, out: Outbox) -> None:
            super().on_message(entry, out)
            self._n += 1

        def on_batch_end(self, out: Outbox) -> None:
            self.batches.append(self._n)
            self._n = 0

    svc = Counting()
    async with running(svc, redis_url):
        await r.xadd(MD_TICKS, tick(i=0))
        await wait_for(lambda: svc.batches == [1], what="first batch")
        # the consumer now waits a second before reading again: these five gather
        async with r.pipeline(transaction=False) as pipe:
            for i in range(1, 6):
                pipe.xadd(MD_TICKS, tick(i=i))
            await pipe.execute()
        await wait_for(lambda: len(svc.seen) == 6, what="all handled")
    assert svc.batches == [1, 5]


async def test_outputs_are_capped_by_approximate_maxlen(r: Redis) -> None:
    bus = Bus(r, "echo", [], BusSettings(maxlen=1_000))
    sig = Signal(symbol="X", ts_ns=1, model_id="m", horizon="1m", edge_bps=0.0, confidence=0.0)
    for _ in range(30):
        await bus.publish([sig] * 200)
    length = await r.xlen(SIGNALS)
    assert 1_000 <= length < 6_000 - 1_000  # approximate trimming: bounded, not exact


async def test_stop_finishes_the_batch_and_returns_promptly(r: Redis, redis_url: str) -> None:
    svc = Echo()
    task = asyncio.ensure_future(svc.main(redis_url, http=False))
    await wait_for(svc.ready.is_set, what="ready")
    for i in range(100):
        await r.xadd(MD_TICKS, tick(i=i))
    await wait_for(lambda: svc.processed > 0, what="processing")
    t0 = time.monotonic()
    svc.stop()
    await asyncio.wait_for(task, timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    assert await pending(r, MD_TICKS, "echo") == 0


def test_group_lag_ignores_a_stale_read_counter_once_the_group_is_caught_up() -> None:
    """After an AOF restart Redis 7.0 can report lag > 0 for a group that has read
    everything; backpressure on that number would stop the source for ever."""
    from shared.bus import group_lag

    caught_up = {"last-delivered-id": "1700-5", "lag": 50_000}
    assert group_lag(caught_up, "1700-5") == 0
    behind = {"last-delivered-id": "1700-1", "lag": 7}
    assert group_lag(behind, "1700-5") == 7
    unknown = {"last-delivered-id": "1700-1", "lag": None}
    assert group_lag(unknown, "1700-5") == 0
