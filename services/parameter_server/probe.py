"""Watch the reload protocol from outside, and time it.

``Announcements`` subscribes to ``param.updated``, ``param.applied`` and
``param.rejected`` and collects what they carry (tests wait on it).
``measure_reload_ms`` publishes ``param.reload`` n times and, for each, times the
interval from the publish to the moment every service running the component has
announced the new version on ``param.applied`` (what ``make bench`` reports as
``hot_reload_p99_ms``)::

    python -m services.parameter_server.probe --component risk_harmoniser -n 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from redis.asyncio import Redis

from shared.config import COMPONENTS, fetch_version
from shared.messages import PARAM_APPLIED, PARAM_REJECTED, PARAM_RELOAD, PARAM_UPDATED
from shared.service import APPLIED_KEY


@dataclass
class Note:
    channel: str
    body: dict[str, Any]
    received_ns: int  # perf_counter_ns() when it arrived


@dataclass
class Announcements:
    """The notes on the param.* channels, in arrival order, while subscribed."""

    r: Redis
    channels: tuple[str, ...] = (PARAM_UPDATED, PARAM_APPLIED, PARAM_REJECTED)
    notes: list[Note] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Announcements:
        self._pubsub = self.r.pubsub()
        await self._pubsub.subscribe(*self.channels)
        # Wait for the confirmations: a publish sent before them could be missed.
        confirmed = 0
        while confirmed < len(self.channels):
            msg = await self._pubsub.get_message(timeout=2.0)
            if msg is None:
                raise TimeoutError(f"no subscribe confirmation for {self.channels}")
            confirmed += msg["type"] == "subscribe"
        self._task = asyncio.ensure_future(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()

    async def _pump(self) -> None:
        while True:
            msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None:
                continue
            now = time.perf_counter_ns()
            channel = msg["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            try:
                body = orjson.loads(msg["data"])
            except orjson.JSONDecodeError:
                body = {"raw": msg["data"]}
            self.notes.append(Note(channel, body if isinstance(body, dict) else {"raw": body}, now))
            self._arrived.set()

    async def wait(
        self,
        predicate: Callable[[list[Note]], Any],
        timeout_s: float = 5.0,
        what: str = "announcement",
    ) -> Any:
        """Wait until ``predicate(notes)`` is truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._arrived.clear()
            got = predicate(self.notes)
            if got:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                tail = [(n.channel, n.body) for n in self.notes[-5:]]
                raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}; last {tail}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=left)

    def on(self, channel: str, **match: Any) -> list[dict[str, Any]]:
        """Bodies seen on ``channel`` whose fields equal ``match``."""
        return [
            n.body
            for n in self.notes
            if n.channel == channel and all(n.body.get(k) == v for k, v in match.items())
        ]


async def services_running(r: Redis, component: str) -> set[str]:
    """Services that report running the current version of ``component`` (those that
    stopped keep an older version in ``edgebus:config:applied`` and are left out)."""
    current = await fetch_version(r, component)
    if current is None:
        return set()
    out: set[str] = set()
    for service, blob in (await r.hgetall(APPLIED_KEY)).items():  # type: ignore[misc]
        note = orjson.loads(blob)
        if note.get("component") == component and note.get("version") == current.version:
            out.add(str(service))
    return out


async def measure_reload_ms(
    redis_url: str,
    component: str = "risk_harmoniser",
    n: int = 100,
    *,
    config_path: str | None = None,
    services: set[str] | None = None,
    timeout_s: float = 2.0,
    warmup: int = 2,
) -> list[float]:
    """Reload latencies in ms: ``param.reload`` published -> ``param.applied`` of the
    new version received from every service in ``services`` (default: every service
    now running the current version of ``component``). Reloads one after the other;
    each creates a version (same content, so behaviour does not change). Raises on a
    rejection or when a service does not apply within ``timeout_s``."""
    request = orjson.dumps(
        {"component": component, "config_path": config_path or COMPONENTS[component].path}
    )
    r = Redis.from_url(redis_url, decode_responses=True)
    try:
        expected = services if services is not None else await services_running(r, component)
        if not expected:
            raise RuntimeError(f"no running service has applied {component!r}; is the stack up?")
        samples: list[float] = []
        async with Announcements(r) as seen:
            for i in range(n + warmup):
                start = len(seen.notes)
                t0 = time.perf_counter_ns()
                await r.publish(PARAM_RELOAD, request)
                done_ns = await seen.wait(
                    partial(_all_applied, start=start, component=component, expected=expected),
                    timeout_s,
                    what=f"{component} applied by {sorted(expected)}",
                )
                if i >= warmup:
                    samples.append((done_ns - t0) / 1e6)
        return samples
    finally:
        await r.aclose()


def _all_applied(
    notes: list[Note], *, start: int, component: str, expected: set[str]
) -> int | None:
    """perf_counter_ns of the last expected ``param.applied`` for the version announced
    in ``notes[start:]``, once all have arrived; raises on a rejection."""
    version = None
    done: dict[str, int] = {}
    for n in notes[start:]:
        if n.body.get("component") != component:
            continue
        if n.channel == PARAM_REJECTED:
            raise RuntimeError(f"reload rejected: {n.body.get('reason')}")
        if n.channel == PARAM_UPDATED and version is None:
            version = n.body.get("version")
        elif (
            n.channel == PARAM_APPLIED
            and version is not None
            and n.body.get("version", 0) >= version  # a later reload may overtake ours
            and n.body.get("service") in expected
        ):
            done[n.body["service"]] = n.received_ns
    if version is None or set(done) != expected:
        return None
    return max(done.values())


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def main() -> None:
    p = argparse.ArgumentParser(description="time param.reload -> param.applied")
    p.add_argument("--redis-url", default=None, help="default $REDIS_URL")
    p.add_argument("--component", default="risk_harmoniser", choices=sorted(COMPONENTS))
    p.add_argument("-n", type=int, default=100)
    args = p.parse_args()
    from shared.bus import redis_url

    samples = asyncio.run(measure_reload_ms(args.redis_url or redis_url(), args.component, args.n))
    print(
        f"{args.component}: n={len(samples)} p50={percentile(samples, 50):.2f} ms "
        f"p99={percentile(samples, 99):.2f} ms max={max(samples):.2f} ms"
    )


if __name__ == "__main__":
    main()
