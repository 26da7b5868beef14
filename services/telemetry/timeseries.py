"""RedisTimeSeries writer, used when the module is loaded (seed 004 as quoted in issue 8).

At start telemetry asks ``MODULE LIST``; if a module named ``timeseries`` is there,
every second it writes the latest trading gauges with ``TS.ADD`` (one key per metric
and symbol, labelled so ``TS.MRANGE ... FILTER metric=var_pct`` works). Otherwise, or
if the server refuses ``MODULE LIST`` (a managed Redis, an ACL), the writer is off and
Prometheus is the only store: the clean fallback, announced once in the log and as
``telemetry_timeseries_enabled 0``.

Command building is pure (``add_commands``); only ``detect`` and ``write`` talk to Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.config import KEY_PREFIX

log = logging.getLogger("edgebus.telemetry.timeseries")

KEY_ROOT = f"{KEY_PREFIX}:ts"
MODULE_NAME = "timeseries"

Sample = tuple[str, str, int, float]  # (metric, symbol, ts_ms, value)


def has_timeseries(module_list: Any) -> bool:
    """True when a ``MODULE LIST`` reply names the timeseries module.

    redis-py returns a list of dicts ({b'name': b'timeseries', b'ver': ...}); raw RESP2
    gives flat lists [name, value, ...]; both are accepted, bytes or str.
    """

    def text(x: Any) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    for mod in module_list or ():
        if isinstance(mod, dict):
            pairs = {text(k): v for k, v in mod.items()}
        elif isinstance(mod, (list, tuple)):
            pairs = {text(k): v for k, v in zip(mod[::2], mod[1::2], strict=False)}
        else:
            continue
        if text(pairs.get("name", "")).lower() == MODULE_NAME:
            return True
    return False


def key_for(metric: str, symbol: str) -> str:
    return f"{KEY_ROOT}:{metric}:{symbol}"


def add_commands(samples: Iterable[Sample], retention_ms: int) -> list[tuple[Any, ...]]:
    """One ``TS.ADD key ts value RETENTION r ON_DUPLICATE LAST LABELS ...`` per sample.

    ON_DUPLICATE LAST: a second write in the same ms replaces the first instead of
    failing; LABELS only apply when TS.ADD creates the key.
    """
    return [
        (
            "TS.ADD",
            key_for(metric, symbol),
            ts_ms,
            repr(float(value)),
            "RETENTION",
            retention_ms,
            "ON_DUPLICATE",
            "LAST",
            "LABELS",
            "source",
            "edgebus",
            "metric",
            metric,
            "symbol",
            symbol,
        )
        for metric, symbol, ts_ms, value in samples
        if value == value  # NaN has no place in a series
    ]


class TimeSeriesWriter:
    """Writes samples when RedisTimeSeries is loaded; does nothing otherwise."""

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self.enabled = False
        self.written = 0

    async def detect(self, r: Redis) -> bool:
        try:
            reply = await r.execute_command("MODULE", "LIST")
        except ResponseError as exc:
            log.info("MODULE LIST refused (%s): RedisTimeSeries writer off", exc)
            self.enabled = False
            return False
        self.enabled = has_timeseries(reply)
        log.info(
            "RedisTimeSeries %s", "loaded: writer on" if self.enabled else "not loaded: writer off"
        )
        return self.enabled

    async def write(self, r: Redis, samples: Sequence[Sample]) -> int:
        if not self.enabled or not samples:
            return 0
        commands = add_commands(samples, self.retention_ms)
        async with r.pipeline(transaction=False) as pipe:
            for cmd in commands:
                pipe.execute_command(*cmd)
            replies = await pipe.execute(raise_on_error=False)
        errors = [x for x in replies if isinstance(x, Exception)]
        if errors:
            log.warning(
                "TS.ADD failed for %d of %d samples: %s", len(errors), len(replies), errors[0]
            )
        self.written += len(replies) - len(errors)
        return len(replies) - len(errors)
