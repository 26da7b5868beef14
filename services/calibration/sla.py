"""Fill-time SLA per (asset, book) with maker -> taker switching (seed 002, ``fill_time_sla.py``:
"fill rate, time-to-fill, timeout tracking", "automatic maker->taker switching", "per-asset
and per-book tracking"; "Fill rate alert: maker fill rate <70%"; "Poor fills: maker orders
timing out -> switch to taker").

Each maker order ends filled after t seconds (event time: fill ts - order ts) or timed out
(no fill). Over the last ``window`` maker orders of an (asset, book):

    fill_rate = filled / orders          mean_s, p95_s = mean and 95th percentile of t over
                                         the filled ones (numpy's linear percentile)

The pair switches MAKER -> TAKER when at least ``min_orders`` are in the window and

    fill_rate < min_fill_rate (0.70, seed 002's alert)   or   p95_s > sla_s[book]

and back TAKER -> MAKER (hysteresis) only on fresh evidence: at least ``min_orders`` maker
orders since the switch (the desk's probes; execution keeps sending some maker orders), and
over the last of them (at most ``window``; the window then keeps only those)

    fill_rate >= resume_fill_rate (0.80)   and   p95_s <= resume_sla_frac (0.8) * sla_s[book]

SLA defaults (ours, from seed 002's holds: scalp 5-15 s, runner 5-60 min): scalp 10 s, the
middle of a scalp's hold and above the seed's 4.2 s average time to fill; runner 300 s, the
shortest runner hold. Taker orders are counted but do not move the maker statistics. Pure:
no clock; memory bounded by ``window`` per pair.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

Mode = Literal["maker", "taker"]

DEFAULT_SLA_S: Mapping[str, float] = MappingProxyType({"scalp": 10.0, "runner": 300.0})


@dataclass(frozen=True)
class SlaParams:
    window: int = 50
    min_orders: int = 20
    min_fill_rate: float = 0.70  # seed 002: "Maker fill rate <70%" alert
    resume_fill_rate: float = 0.80
    resume_sla_frac: float = 0.8
    sla_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SLA_S))
    default_sla_s: float = 10.0  # a book not in sla_s

    def __post_init__(self) -> None:
        object.__setattr__(self, "sla_s", MappingProxyType(dict(self.sla_s)))
        if not (1 <= self.min_orders <= self.window):
            raise ValueError(f"need 1 <= min_orders <= window: {self.min_orders}, {self.window}")
        if not (0.0 <= self.min_fill_rate <= self.resume_fill_rate <= 1.0):
            raise ValueError("need 0 <= min_fill_rate <= resume_fill_rate <= 1 (hysteresis)")
        if not (0.0 < self.resume_sla_frac <= 1.0):
            raise ValueError(f"resume_sla_frac must be in (0, 1], not {self.resume_sla_frac!r}")
        for book, s in {**self.sla_s, "default": self.default_sla_s}.items():
            if not (math.isfinite(s) and s > 0.0):
                raise ValueError(f"sla_s[{book}] must be finite and > 0, not {s!r}")

    def sla_of(self, book: str) -> float:
        return float(self.sla_s.get(book, self.default_sla_s))


@dataclass
class _Pair:
    window: deque[float | None]  # time to fill in s, None = timed out
    mode: Mode = "maker"
    since_switch: int = 0  # maker orders since the last switch to taker
    orders: int = 0
    timeouts: int = 0
    taker_orders: int = 0
    switches: int = 0


def _window_stats(times: list[float | None]) -> tuple[float, float, float]:
    """(fill_rate, mean_s, p95_s) of maker orders; NaN times when none filled."""
    filled = np.array([t for t in times if t is not None], dtype=np.float64)
    rate = filled.size / len(times) if times else math.nan
    if filled.size == 0:
        return rate, math.nan, math.nan
    return rate, float(filled.mean()), float(np.percentile(filled, 95.0))


class FillSla:
    """Maker fill rate and time to fill per (asset, book); the maker/taker switch (above)."""

    def __init__(self, params: SlaParams | None = None) -> None:
        self.params = params if params is not None else SlaParams()
        self._pairs: dict[tuple[str, str], _Pair] = {}

    def _pair(self, asset: str, book: str) -> _Pair:
        key = (asset, book)
        if key not in self._pairs:
            self._pairs[key] = _Pair(window=deque(maxlen=self.params.window))
        return self._pairs[key]

    def record(
        self,
        asset: str,
        book: str,
        time_to_fill_s: float | None,
        liquidity: Literal["maker", "taker"] = "maker",
    ) -> Mode:
        """One order's end: filled after ``time_to_fill_s`` seconds, or timed out (None).
        Returns the pair's mode after it."""
        if time_to_fill_s is not None and not (
            math.isfinite(time_to_fill_s) and time_to_fill_s >= 0.0
        ):
            raise ValueError(f"time_to_fill_s must be finite and >= 0, not {time_to_fill_s!r}")
        p = self._pair(asset, book)
        if liquidity == "taker":
            p.taker_orders += 1
            return p.mode
        p.window.append(None if time_to_fill_s is None else float(time_to_fill_s))
        p.orders += 1
        p.timeouts += time_to_fill_s is None
        self._evaluate(p, book)
        return p.mode

    def _evaluate(self, p: _Pair, book: str) -> None:
        q = self.params
        sla = q.sla_of(book)
        if p.mode == "maker":
            if len(p.window) < q.min_orders:
                return
            rate, _, p95 = _window_stats(list(p.window))
            if rate < q.min_fill_rate or (math.isfinite(p95) and p95 > sla):
                p.mode, p.since_switch = "taker", 0
                p.switches += 1
            return
        p.since_switch += 1
        if p.since_switch < q.min_orders:
            return
        fresh = list(p.window)[-min(p.since_switch, q.window) :]
        rate, _, p95 = _window_stats(fresh)
        if rate >= q.resume_fill_rate and math.isfinite(p95) and p95 <= q.resume_sla_frac * sla:
            p.mode = "maker"
            p.switches += 1
            # the orders before the switch are not evidence about now: without this the old
            # timeouts still in the window would switch the pair straight back
            p.window = deque(fresh, maxlen=q.window)

    def should_switch_to_taker(self, asset: str, book: str) -> bool:
        """True while the pair is in TAKER mode (an unseen pair: False)."""
        p = self._pairs.get((asset, book))
        return p is not None and p.mode == "taker"

    def stats(self, asset: str, book: str) -> dict[str, Any]:
        """The pair's window: fill_rate, mean/p95 time to fill (s), timeouts; totals; mode."""
        p = self._pair(asset, book)
        times = list(p.window)
        rate, mean_s, p95_s = _window_stats(times)
        return {
            "asset": asset,
            "book": book,
            "mode": p.mode,
            "window_orders": len(times),
            "fill_rate": rate,
            "mean_time_to_fill_s": mean_s,
            "p95_time_to_fill_s": p95_s,
            "window_timeouts": sum(t is None for t in times),
            "orders": p.orders,
            "timeouts": p.timeouts,
            "taker_orders": p.taker_orders,
            "switches": p.switches,
            "sla_s": self.params.sla_of(book),
        }

    def pairs(self) -> list[tuple[str, str]]:
        return sorted(self._pairs)
