"""The invariants chaos must not break, checked hop by hop over one phase's entries.

A phase starts with the pipeline drained and the source stopped, and ends the same
way, so every entry written in the phase was caused by an input of the phase:
- md.ticks -> features: one features entry per tick (symbol, ts_ns), never two;
- features -> signals: each features entry routed once per (model, horizon);
- non-shadow signals -> risk.decisions: one decision per signal, never two;
- orders -> fills | rejections: each order filled or rejected; order_id and fill_id
  unique (a retry must never double an order or a fill).
``lost`` counts inputs without their output, ``duplicates`` outputs made twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis

STREAMS = ("md.ticks", "features", "signals", "orders", "fills", "rejections", "risk.decisions")


def last_ids(r: redis.Redis) -> dict[str, str]:
    """Where each stream ends now: a phase reads what comes after."""
    out = {}
    for stream in STREAMS:
        last = r.xrevrange(stream, count=1)
        out[stream] = str(last[0][0]) if last else "0-0"
    return out


@dataclass
class HopReport:
    checked: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def duplicates_total(self) -> int:
        return sum(self.duplicates.values())


def _after(r: redis.Redis, stream: str, start: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = f"({start}" if start != "0-0" else "-"
    while True:
        batch: list[tuple[str, dict[str, Any]]] = r.xrange(stream, min=cursor, count=10_000)  # type: ignore[assignment]
        if not batch:
            return entries
        entries += [f for _, f in batch]
        cursor = f"({batch[-1][0]}"


def _floor(*keyed: Any) -> int:
    """The newest of the oldest timestamps of each collection of (symbol, ts_ns) keys."""
    lows = [min(int(k[1]) for k in keys) for keys in keyed if keys]
    return max(lows) if lows else 0


def check_phase(r: redis.Redis, start: dict[str, str]) -> HopReport:
    s = {stream: _after(r, stream, start[stream]) for stream in STREAMS}
    rep = HopReport(checked=sum(len(v) for v in s.values()))

    # Under overload MAXLEN trims the oldest entries of each stream at slightly different
    # points (approximate trimming), so each hop is compared only from the newest of its
    # two streams' oldest timestamps: what one side lost to trimming is not "lost".
    ticks = {(f["symbol"], f["ts_ns"]) for f in s["md.ticks"]}
    feats = Counter((f["symbol"], f["ts_ns"]) for f in s["features"])
    lo = _floor(ticks, feats)
    rep.lost["md.ticks->features"] = len({k for k in ticks - set(feats) if int(k[1]) >= lo})
    rep.duplicates["features"] = sum(n - 1 for n in feats.values() if n > 1)

    sig_keys = Counter((f["symbol"], f["ts_ns"], f["model_id"], f["horizon"]) for f in s["signals"])
    routed = {(sym, ts) for sym, ts, _, _ in sig_keys}
    lo = _floor(feats, routed)
    # model_router conflates: one decision per symbol per batch, on its latest features.
    # A features entry is lost only if no signal of its symbol comes at or after it.
    newest: dict[str, int] = {}
    for sym, ts in routed:
        newest[sym] = max(newest.get(sym, 0), int(ts))
    rep.lost["features->signals"] = len(
        {k for k in feats if int(k[1]) >= lo and int(k[1]) > newest.get(k[0], -1)}
    )
    rep.duplicates["signals"] = sum(n - 1 for n in sig_keys.values() if n > 1)

    live = Counter((f["symbol"], f["ts_ns"]) for f in s["signals"] if f.get("shadow") != "1")
    decided = Counter((f["symbol"], f["ts_ns"]) for f in s["risk.decisions"])
    lo = _floor(live, decided)
    rep.lost["signals->risk.decisions"] = sum(
        max(0, n - decided[k]) for k, n in live.items() if int(k[1]) >= lo
    )
    rep.duplicates["risk.decisions"] = sum(
        max(0, n - live[k]) for k, n in decided.items() if int(k[1]) >= lo
    )

    orders = Counter(f["order_id"] for f in s["orders"])
    fills = Counter(f["fill_id"] for f in s["fills"])
    done = {f["order_id"] for f in s["fills"]} | {f["order_id"] for f in s["rejections"]}
    rep.lost["orders->fills|rejections"] = len(set(orders) - done)
    rep.duplicates["order_id"] = sum(n - 1 for n in orders.values() if n > 1)
    rep.duplicates["fill_id"] = sum(n - 1 for n in fills.values() if n > 1)
    return rep
