"""One path for every source: raw quote -> quality gate -> (md.ticks Tick, Features).

Pure (no I/O): the service feeds it quotes from md.raw, the synthetic market or the
websocket adapter, and writes what it returns. State is kept per (source, session,
symbol), so replaying a file twice, or a replay next to the live feed, starts fresh
rather than tripping the out-of-order check; the number of such states is capped
(least recently used dropped first) so memory stays bounded.

``trace_ts_ns`` (wall clock, for latency only) is the source's ingest stamp: the
synthetic market and the websocket feed stamp their quotes; a quote that arrives
unstamped (``edgebus replay`` writes none on md.raw) is stamped here, when feature_bus
takes it in. It never enters a feature or a quality decision.

Prints (``trade_*`` of the quote, docs/feature_bus.md "Prints") are carried to the Tick
when well-formed: qty finite and >= 0, side -1, 0 or +1, count an int >= 0, price
finite and > 0 (or None); a trade with no price takes the touch it hit. A malformed print
is dropped and the tick flagged ``bad_print`` (the quote itself is still good).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from services.feature_bus.config import FeatureParams, QualityParams
from services.feature_bus.features import FeatureState, valid_ids
from services.feature_bus.quality import QualityScore, SymbolTrack
from shared.messages import SCHEMA_VERSION, Features, RawQuote, Tick

MAX_TRACKED = 10_000
wall_ns = time.time_ns  # the ingest stamp's clock (a module name: tests replace it)
_INF = math.inf


@dataclass(slots=True)
class Outcome:
    tick: Tick | None = None
    features: Features | None = None
    reason: str | None = None  # rejected: why (the dlq reason)
    flags: tuple[str, ...] = ()


class _Track:
    __slots__ = ("gate", "features")

    def __init__(self, fp: FeatureParams) -> None:
        self.gate = SymbolTrack()
        self.features = FeatureState(fp)


class QuotePipeline:
    def __init__(self, features: FeatureParams, quality: QualityParams) -> None:
        self.fp = features
        self.qp = quality
        self.tracks: OrderedDict[tuple[str, str, str], _Track] = OrderedDict()
        self.scores: dict[str, QualityScore] = {}

    def score(self, source: str) -> float:
        s = self.scores.get(source)
        return s.value if s is not None else 1.0

    def _track(self, q: RawQuote) -> _Track:
        key = (q.source, q.session, q.symbol)
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = _Track(self.fp)
            if len(self.tracks) > MAX_TRACKED:
                self.tracks.popitem(last=False)
        else:
            self.tracks.move_to_end(key)
        return track

    def process(self, q: RawQuote, trace_ts_ns: int = 0) -> Outcome:
        track = self._track(q)
        verdict = track.gate.check(q, self.qp)
        score = self.scores.get(q.source)
        if score is None:
            score = self.scores[q.source] = QualityScore(self.qp.score_halflife_quotes)
        score.update(verdict.reason is None and not verdict.flags)
        if verdict.reason is not None:
            return Outcome(reason=verdict.reason)
        state = track.features
        quality = verdict.quality
        trade_qty = q.trade_qty
        trade_side: int | None = None
        trade_price: float | None = None
        trade_count: int | None = None
        if trade_qty is not None:
            carried = print_of(q)
            if carried is None:
                trade_qty = None
                quality = f"{quality},bad_print" if quality else "bad_print"
            else:
                trade_qty, trade_side, trade_price, trade_count = carried
        last_price, volume = q.last, q.volume
        fields: dict[str, Any] = {  # every field, in Tick's order (see Message.trusted)
            "v": SCHEMA_VERSION,
            "trace_ts_ns": trace_ts_ns or q.trace_ts_ns or wall_ns(),
            "symbol": q.symbol,
            "ts_ns": q.ts_ns,
            "bid": q.bid,
            "ask": q.ask,
            "bid_size": q.bid_size,
            "ask_size": q.ask_size,
            "last": last_price if last_price is not None and last_price > 0 else None,
            "volume": volume if volume is not None and volume >= 0 else None,
            "open": q.open,  # the gate has checked a bar's open, high and low
            "high": q.high,
            "low": q.low,
            "venue": q.source,
            "quality": quality,
            "trade_qty": trade_qty,
            "trade_side": trade_side,
            "trade_price": trade_price,
            "trade_count": trade_count,
        }
        # The gate has checked prices and sizes (finite, positive, not negative): what
        # is left for validation to check is checked here; anything odd is validated.
        if (
            type(q.bid) is type(q.ask) is float
            and type(q.bid_size) is type(q.ask_size) is float
            and (fields["last"] is None or (type(last_price) is float and last_price != _INF))
            and (fields["volume"] is None or (type(volume) is float and volume != _INF))
            and (q.high is None or type(q.open) is type(q.high) is type(q.low) is float)
            and type(q.source) is str
            and valid_ids(fields["trace_ts_ns"], q.symbol, q.ts_ns)
        ):
            tick = Tick.trusted(fields)
        else:
            tick = Tick(**fields)
        if verdict.ffill_steps and state.n:
            # Forward-fill (quotes only, never bars): step the state with the previous
            # quote once per missing interval, so the quiet time is the previous
            # price's, not the next one's; with no trades in it (its print is not repeated).
            last = state.last_tick
            for k in range(1, verdict.ffill_steps + 1):
                if last is not None:
                    update: dict[str, Any] = {"ts_ns": last.ts_ns + k * verdict.ffill_interval_ns}
                    if last.trade_qty is not None:
                        update.update(trade_qty=0.0, trade_side=0, trade_price=None, trade_count=0)
                    state.update(last.model_copy(update=update))
        feats = state.update(tick, quality=quality, source=q.source)
        return Outcome(tick=tick, features=feats, flags=verdict.flags)


def print_of(q: RawQuote) -> tuple[float, int, float | None, int] | None:
    """The quote's print as (qty, side, price, count), well-typed, or None when any part
    is malformed (module docstring)."""
    qty, side, price, count = q.trade_qty, q.trade_side, q.trade_price, q.trade_count
    try:
        qty = float(qty)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (0.0 <= qty < _INF) or type(side) is not int or side not in (-1, 0, 1):
        return None
    if type(count) is not int or count < 0:
        return None
    if price is not None:
        if type(price) is not float or not (0.0 < price < _INF):
            return None
    elif qty > 0 and side != 0:
        price = q.ask if side > 0 else q.bid
    if qty == 0.0:
        return 0.0, 0, None, count
    return qty, side, price, count
