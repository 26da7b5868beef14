"""Stream length and consumer-group lag for every stream, from XINFO (1 s poll).

``lag`` is what XINFO GROUPS reports (Redis >= 7: entries not yet delivered to the
group; absent when Redis cannot tell after a trim). ``pending`` is delivered but not
acknowledged. The per-service gauges of ``shared.metrics`` only cover each service's
own inputs; these cover every group of every stream, from one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError


@dataclass(frozen=True, slots=True)
class GroupStats:
    stream: str
    group: str
    lag: int | None
    pending: int


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def parse_groups(stream: str, reply: Iterable[dict[Any, Any]]) -> list[GroupStats]:
    out = []
    for g in reply or ():
        d = {_text(k): v for k, v in g.items()}
        lag = d.get("lag")
        out.append(
            GroupStats(
                stream,
                _text(d.get("name", "")),
                int(lag) if lag is not None else None,
                int(d.get("pending", 0)),
            )
        )
    return out


async def poll(r: Redis, streams: Iterable[str]) -> tuple[dict[str, int], list[GroupStats]]:
    """(length per stream, group stats); a stream that does not exist yet has length 0."""
    lengths: dict[str, int] = {}
    groups: list[GroupStats] = []
    for stream in streams:
        try:
            lengths[stream] = int(await r.xlen(stream))
            groups.extend(parse_groups(stream, await r.xinfo_groups(stream)))
        except ResponseError:  # no such key
            lengths[stream] = 0
    return lengths, groups
