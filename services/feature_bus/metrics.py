"""feature_bus's per-source health metrics, declared together; names carry their unit.

``source`` is the kind of source (synthetic, replay, binance), never a free-form id, so
the label set stays small.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from services.feature_bus.quality import FLAG_NAMES

QUOTES = Counter(
    "edgebus_feature_source_quotes_total", "Quotes received, before any check", ["source"]
)
FAILURES = Counter(
    "edgebus_feature_source_failures_total",
    "Quotes or frames rejected (to the dlq), by reason class",
    ["source", "reason"],
)
FLAGS = Counter(
    "edgebus_feature_quality_flags_total",
    "Accepted quotes carrying a data-quality flag, by symbol and flag",
    ["source", "symbol", "flag"],
)
LATE_QUOTES = Counter(
    "edgebus_feature_source_late_quotes_total",
    "Live quotes stamped at or before the watermark already promised (older than "
    "websocket.allowed_lateness_ms on arrival): published, but late downstream",
    ["source"],
)
RECONNECTS = Counter(
    "edgebus_feature_source_reconnects_total", "Connections re-established", ["source"]
)
QUALITY_SCORE = Gauge(
    "edgebus_feature_source_quality_score_ratio",
    "EWMA share of clean quotes (1 = all clean), half-life quality.score_halflife_quotes",
    ["source"],
)
STALE = Gauge(
    "edgebus_feature_source_stale",
    "1 while the source is degraded: not connected, or a symbol silent past quality.stale_ms",
    ["source"],
)
CONNECTED = Gauge("edgebus_feature_source_connected", "1 while connected", ["source"])
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class QuoteLatency:
    """``edgebus_feature_source_latency_seconds``: a histogram by source, kept as plain
    counts and exposed by ``collect`` (a custom collector). Observing is a bisect and two
    additions: the client's Histogram takes a lock for the sum and one for the bucket,
    about 2 us per quote, a tenth of a quote's whole budget at full speed. Observed from
    the event loop only; a scrape from another thread reads counts that are at most one
    observation apart, as with the client's Histogram."""

    NAME = "edgebus_feature_source_latency_seconds"
    HELP = "Exchange time of a quote to its publish on md.ticks (live sources only)"

    def __init__(self, buckets_s: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds_s = (*buckets_s, math.inf)
        self.by_source: dict[str, tuple[list[float], list[float]]] = {}  # counts, [sum]

    def observe(self, source: str, seconds: float) -> None:
        state = self.by_source.get(source)
        if state is None:
            state = self.by_source[source] = ([0.0] * len(self.bounds_s), [0.0])
        state[0][bisect.bisect_left(self.bounds_s, seconds)] += 1.0
        state[1][0] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.NAME, self.HELP, labels=["source"])
        for source, (counts, total) in list(self.by_source.items()):
            cumulative = list(itertools.accumulate(counts))
            buckets = [
                (floatToGoString(b), n) for b, n in zip(self.bounds_s, cumulative, strict=True)
            ]
            family.add_metric([source], buckets, total[0])
        yield family


LATENCY = QuoteLatency()
REGISTRY.register(LATENCY)  # type: ignore[arg-type]


def watch_source(source: str, symbols: Iterable[str], problems: Callable[[], list[str]]) -> None:
    """A source started: its stale gauge reads ``problems`` at each scrape, and its
    flag counters exist at 0 for every symbol it quotes (a rate over a counter that
    appears with its first increment misses that increment, and a panel of a clean
    feed would show no data)."""
    STALE.labels(source).set_function(lambda: 1.0 if problems() else 0.0)
    for symbol in symbols:
        for flag in FLAG_NAMES:
            FLAGS.labels(source, symbol, flag)


def reason_class(reason: str) -> str:
    """The first words of a dlq reason, e.g. "crossed book" or "out of order"."""
    return reason.split(":", 1)[0][:40]


class SourceMetrics:
    """The per-quote metrics of one source, labelled once: ``labels()`` costs about
    1 us, a tenth of a quote's whole budget at full speed."""

    __slots__ = ("quotes", "quality_score")

    def __init__(self, source: str) -> None:
        self.quotes: Any = QUOTES.labels(source)
        self.quality_score: Any = QUALITY_SCORE.labels(source)


_SOURCES: dict[str, SourceMetrics] = {}


def of_source(source: str) -> SourceMetrics:
    m = _SOURCES.get(source)
    if m is None:
        m = _SOURCES[source] = SourceMetrics(source)
    return m
