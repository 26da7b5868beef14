"""Test helpers: run a service in-process against a real Redis, wait on conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from shared.messages import Features
from shared.service import Service

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
