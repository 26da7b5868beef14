"""Test helpers: run a service in-process against a real Redis, wait on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from redis.asyncio import Redis

from shared.bus import Entry, Outbox
from shared.messages import MAX_NS, Features, Message, Watermark, watermark_stream
from shared.service import Service
from shared.testing import Harness

S = TypeVar("S", bound=Service)


async def wait_for(
    predicate: Callable[[], Awaitable[Any]] | Callable[[], Any],
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll ``predicate`` (sync or async) until truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def features(
    i: int,
    *,
    symbol: str = "BTC-USD",
    ts_base_ns: int | None = None,
    bid_size: float = 3.0,
    ask_size: float = 1.0,
) -> dict[str, str | int | float]:
    """The wire fields of a minimal valid ``features`` entry (one per ``i``); its ts_ns
    is ``ts_base_ns + i`` (now + i by default)."""
    base = time.time_ns() if ts_base_ns is None else ts_base_ns
    return Features(
        trace_ts_ns=time.time_ns(),
        symbol=symbol,
        ts_ns=base + i,
        mid=100.0,
        spread_bps=1.0,
        regime="RANGE",
        features_hash=f"h{i}",
        bid_size=bid_size,
        ask_size=ask_size,
    ).to_fields()


class WritesHarness(Harness):
    """``Harness`` that also keeps the Redis writes each batch queued (``Outbox.call``,
    which the plain harness drops), in order: a test applies them to a fake pipeline."""

    def __init__(self, services: Any, **kw: Any) -> None:
        super().__init__(services, **kw)
        self.ops: list[Callable[[Any], Any]] = []

    def step(self, svc: Service[Any], entries: list[Entry]) -> Outbox:
        out = super().step(svc, entries)
        self.ops.extend(out.ops)
        return out

    def apply(self, pipe: Any) -> None:
        """Run the writes kept so far on ``pipe`` (and forget them)."""
        ops, self.ops = self.ops, []
        for op in ops:
            op(pipe)


def feed_in_order(h: Harness, messages: Iterable[Message], *, run: bool = True) -> Harness:
    """Feed ``messages`` (given in event-time order) one at a time, each on its own
    stream, then every outside producer's watermark through its ``ts_ns``: the caller
    is the upstream of every input no harness service produces, complete through what
    it fed so far. With ``run``, each is handled before the next (batches of one)."""
    inside = {svc.name for svc in h.services}
    producer: dict[str, str] = {}
    for svc in h.services:
        for stream, p in svc.upstreams.items():
            if p not in inside:
                producer[stream] = p
    outside = sorted(set(producer.values()))
    for msg in messages:
        h.feed(msg.STREAM, [msg])
        for p in outside:
            h.watermark(p, msg.ts_ns)  # type: ignore[attr-defined]
        if run:
            h.run()
    return h


def complete(producer: str) -> tuple[str, dict[str, Any]]:
    """(stream, fields) of a watermark saying ``producer`` wrote everything it will: for
    a test that writes a producer's entries itself, so the service under test need not
    wait for the producer's liveness timeout (``eventtime.STARTUP_GRACE_S``)."""
    note = Watermark(producer=producer, wm_ns=MAX_NS, wall_ns=time.time_ns())
    return watermark_stream(producer), note.to_fields()


async def watermark(r: Redis, producer: str, wm_ns: int) -> None:
    """Write ``producer``'s watermark on ``wm.<producer>``, as a live producer would: a
    service merging its streams may then handle what it holds through ``wm_ns`` (and
    hears the producer is alive, so ``max_hold_ms`` does not step over it)."""
    note = Watermark(producer=producer, wm_ns=wm_ns, wall_ns=time.time_ns())
    await r.xadd(watermark_stream(producer), note.to_fields())  # type: ignore[arg-type]


async def caught_up(r: Redis, group: str, *streams: str) -> bool:
    """Whether ``group`` has read every entry of ``streams`` and acknowledged it (entries
    a merge holds stay pending: this is "handled", not just "read")."""
    for stream in streams:
        info = {g["name"]: g for g in await r.xinfo_groups(stream)}
        g = info.get(group)
        last = await r.xrevrange(stream, count=1)
        if g is None or g["pending"] or (last and g["last-delivered-id"] != last[0][0]):
            return False
    return True


def wait_until(pred: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Synchronous ``wait_for``: poll ``pred`` every 0.1 s until truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@contextlib.asynccontextmanager
async def running(svc: S, url: str, timeout_s: float = 10.0) -> AsyncIterator[S]:
    """Start ``svc`` (no HTTP) on ``url``; stop it cleanly on exit."""
    task = asyncio.ensure_future(svc.main(url, http=False))
    try:
        await wait_for(
            lambda: svc.ready.is_set() or task.done(), timeout_s, what=f"{svc.name} ready"
        )
        if task.done():
            task.result()  # raise what killed it
        yield svc
    finally:
        svc.stop()
        await asyncio.wait_for(task, timeout=10.0)


RESEARCH_T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MINUTE_NS = 60 * 10**9


def research_rules() -> Any:
    """model_router rules for the research-layer tests: two live seed models (voting
    unvalidated) and the null model in shadow, one horizon."""
    from shared.config import validate

    return validate(
        "model_router",
        {
            "bus": {"block_ms": 20, "batch_size": 200},
            "rules": [
                {
                    "pattern": "*",
                    "horizon": "1m",
                    "models": [
                        {"id": "book_pressure", "trade_unvalidated": True},
                        {"id": "ma_momentum", "trade_unvalidated": True},
                        {"id": "random_baseline", "shadow": True},
                    ],
                }
            ],
        },
    )


def minute_features(n: int, seed: int, symbol: str = "BTC-USD") -> list[dict[str, Any]]:
    """``n`` features entries (fields) of one symbol, one a minute of event time from
    ``RESEARCH_T0``: a book imbalance (AR(1)) that the mid follows a little."""
    import random

    rng = random.Random(seed)
    mid, imb, out = 100.0, 0.0, []
    for i in range(n):
        imb = 0.9 * imb + rng.gauss(0, 0.3)
        mid *= 1 + (0.0002 * imb + rng.gauss(0, 0.0005))
        out.append(
            Features(
                trace_ts_ns=time.time_ns(),
                symbol=symbol,
                ts_ns=RESEARCH_T0 + i * MINUTE_NS,
                mid=mid,
                spread_bps=1.0,
                regime="TREND",
                features_hash=f"h{i}",
                bid_size=max(0.1, 1.0 + imb),
                ask_size=max(0.1, 1.0 - imb),
                ema_short=mid * (1 + 0.001 * imb),
                ema_long=mid,
            ).to_fields()
        )
    return out
