"""Data-quality gate (seed 001 §4 and seed 003 "Data governance", as quoted in issue 3).

Every quote gets exactly one verdict, never a silent pass:

rejected (to ``dlq`` with the reason; feature state untouched)
  - non-finite or non-positive bid/ask, negative or non-finite size, ts_ns <= 0
  - crossed book (bid > ask)
  - out of order: ts_ns earlier than the symbol's previous quote
  - duplicate: same ts_ns and the same bid, ask and sizes as the previous quote

accepted with flags (comma-separated in ``Features.quality`` and ``Tick.quality``)
  - ``locked``: bid == ask
  - ``stale``: recv_ts_ns - ts_ns > stale_ms (only when the source stamps its receive
    time; replayed history is not "late")
  - ``jump``: |mid / previous mid - 1| * 100 > max_price_jump_pct
  - ``ffill``: a gap of at most ``ffill_max_intervals`` missing intervals; the feature
    state is first stepped once per missing interval with the previous quote
    (forward-fill), nothing is published for the missing points
  - ``gap``: a longer gap; nothing is filled

A gap is dt > max(gap_ms, gap_factor * T), with T the symbol's typical interval: an
EWMA (alpha 0.1) of dt over non-gap intervals, seeded with the first dt. The number of
missing intervals is round(dt / T) - 1. A relative rule works for ticks and for
minute bars alike; the absolute floor keeps bursty live ticks from counting as gaps.

Bars (quotes with ``open``, ``high`` and ``low``) are never forward-filled: a market's
closed hours are not missing data. Their gap is dt > max(gap_ms, bar_gap_factor * T)
(default 5 T: weekends and holidays of daily bars are not gaps). A bar must carry all
three of open, high and low, finite, with 0 < low <= open <= high, else it is rejected.

Every decision here is on event time (``ts_ns``); only ``stale`` compares the receive
time with it (latency, not content).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.feature_bus.config import QualityParams
from shared.messages import RawQuote

INTERVAL_ALPHA = 0.1
# Every flag an accepted quote can carry (the dashboard shows each per symbol).
FLAG_NAMES = ("locked", "stale", "jump", "ffill", "gap")


def static_problem(bid: float, ask: float, bid_size: float, ask_size: float) -> str | None:
    """Why a quote cannot be a quote at all (no history needed), or None."""
    for name, val in (("bid", bid), ("ask", ask), ("bid_size", bid_size), ("ask_size", ask_size)):
        if not math.isfinite(val):
            return f"non-finite {name}: {val}"
    if bid <= 0 or ask <= 0:
        return f"non-positive price: bid={bid} ask={ask}"
    if bid_size < 0 or ask_size < 0:
        return f"negative size: bid_size={bid_size} ask_size={ask_size}"
    if bid > ask:
        return f"crossed book: bid {bid} > ask {ask}"
    return None


def bar_problem(o: float | None, h: float | None, lo: float | None) -> str | None:
    """Why open/high/low cannot be a bar's, or None."""
    if o is None or h is None or lo is None:
        return f"bar: open, high and low must all be given (open={o} high={h} low={lo})"
    try:
        ok = 0.0 < lo <= o <= h < _INF
    except TypeError:
        ok = False
    if not ok:
        return f"bar: inconsistent or non-finite (open={o} high={h} low={lo})"
    return None


@dataclass(slots=True)
class Verdict:
    reason: str | None = None  # set: reject to the dlq
    flags: tuple[str, ...] = ()
    ffill_steps: int = 0
    ffill_interval_ns: int = 0

    @property
    def quality(self) -> str:
        return ",".join(self.flags)


CLEAN = Verdict()  # shared: a clean quote's verdict (nothing mutates verdicts)
_INF = math.inf


class SymbolTrack:
    """What the gate remembers of one symbol's previous accepted quote."""

    __slots__ = ("ts_ns", "quote", "mid", "interval_ns")

    def __init__(self) -> None:
        self.ts_ns = 0
        self.quote: tuple[float, float, float, float] | None = None
        self.mid = 0.0
        self.interval_ns = 0.0  # typical interval T; 0 until two quotes were seen

    def check(self, q: RawQuote, p: QualityParams) -> Verdict:
        if q.ts_ns <= 0:
            return Verdict(reason=f"invalid timestamp: ts_ns={q.ts_ns}")
        bid, ask, bid_size, ask_size = quote = (q.bid, q.ask, q.bid_size, q.ask_size)
        # The common case in one chain (NaN fails every comparison); else the reason.
        try:
            sane = 0.0 < bid <= ask < _INF and 0.0 <= bid_size < _INF and 0.0 <= ask_size < _INF
        except TypeError:  # not numbers (model_construct): static_problem says how
            sane = False
        if not sane:
            problem = static_problem(bid, ask, bid_size, ask_size)
            if problem:
                return Verdict(reason=problem)
        if q.high is not None or q.low is not None or q.open is not None:
            problem = bar_problem(q.open, q.high, q.low)
            if problem:
                return Verdict(reason=problem)
        if self.quote is not None:
            if q.ts_ns < self.ts_ns:
                return Verdict(
                    reason=f"out of order: ts_ns {q.ts_ns} < previous {self.ts_ns} ({q.symbol})"
                )
            if q.ts_ns == self.ts_ns and quote == self.quote:
                return Verdict(reason=f"duplicate of the previous quote at ts_ns {q.ts_ns}")
        flags: list[str] = []
        if q.bid == q.ask:
            flags.append("locked")
        if q.recv_ts_ns > 0 and q.recv_ts_ns - q.ts_ns > p.stale_ms * 1e6:
            flags.append("stale")
        mid = (q.bid + q.ask) / 2.0
        if self.mid > 0 and abs(mid / self.mid - 1.0) * 100.0 > p.max_price_jump_pct:
            flags.append("jump")
        steps, interval = self._gap(q.ts_ns, p, flags, q.high is not None)
        self.ts_ns, self.quote, self.mid = q.ts_ns, quote, mid
        if not flags:
            return CLEAN
        return Verdict(flags=tuple(flags), ffill_steps=steps, ffill_interval_ns=interval)

    def _gap(self, ts_ns: int, p: QualityParams, flags: list[str], bar: bool) -> tuple[int, int]:
        if self.quote is None:
            return 0, 0
        dt = ts_ns - self.ts_ns
        t = self.interval_ns
        if t <= 0:
            self.interval_ns = float(dt)
            return 0, 0
        factor = p.bar_gap_factor if bar else p.gap_factor
        if p.gap_ms > 0 and dt > max(p.gap_ms * 1e6, factor * t):
            if bar:  # closed hours or missing bars: nothing to fill
                flags.append("gap")
                return 0, 0
            missing = max(1, round(dt / t) - 1)
            if missing <= p.ffill_max_intervals:
                flags.append("ffill")
                return missing, int(t)
            flags.append("gap")
            return 0, 0
        self.interval_ns = t + INTERVAL_ALPHA * (dt - t)
        return 0, 0


class QualityScore:
    """Share of clean quotes, EWMA with a half-life in quotes: 1.0 = all clean.

    score_t = lambda score_{t-1} + (1 - lambda) * clean_t, lambda = 0.5 ** (1 / half_life);
    clean_t is 1 for an accepted quote without flags, else 0. Starts at 1.
    """

    __slots__ = ("lam", "value")

    def __init__(self, half_life_quotes: int) -> None:
        self.lam = 0.5 ** (1.0 / half_life_quotes)
        self.value = 1.0

    def update(self, clean: bool) -> float:
        self.value = self.lam * self.value + (1.0 - self.lam) * (1.0 if clean else 0.0)
        return self.value
