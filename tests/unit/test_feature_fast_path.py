"""feature_bus builds its messages without validation when its own checks show they are
valid (Message.trusted), and rounds the hash inputs in two C calls: the outputs must be
exactly those of the validating path, whatever the quotes, and those of the code as it
was before (a digest of the synthetic market's outputs)."""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any

import hiredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.feature_bus import pipeline
from services.feature_bus.config import FeatureParams, QualityParams
from services.feature_bus.features import rounded_10g
from services.feature_bus.pipeline import QuotePipeline
from services.feature_bus.service import FeatureBus
from shared.config import load_file
from shared.messages import Message, RawQuote

MANY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wire(msg: Message) -> bytes:
    items: list[Any] = [msg.STREAM]
    for kv in msg.to_fields().items():
        items.extend(kv)
    return hiredis.pack_command(tuple(items))


# ---- the hash inputs ------------------------------------------------------------------


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


@MANY
@given(st.lists(st.floats() | st.integers(-(10**12), 10**12), min_size=1, max_size=12))
def test_rounded_10g_is_float_of_10g_text(values: list[float]) -> None:
    want = [float(f"{v:.10g}") for v in values]
    assert bits(rounded_10g(tuple(values))) == bits(want)  # bit for bit: -0.0 is not 0.0


def test_rounded_10g_on_the_edges() -> None:
    edges = (-0.0, 0.0, 5e-324, -5e-324, 1e-5, 9.9999999995, 1e16, 1.7976931348623157e308)
    for v in edges:
        want = float(f"{v:.10g}")
        assert bits(rounded_10g((1.0, v))) == bits([1.0, want])
        assert bits(rounded_10g((v, 1.0))) == bits([want, 1.0])
        assert bits(rounded_10g((v,))) == bits([want])
    with pytest.raises(ValueError, match="format code"):  # as float(f"{v:.10g}") does
        rounded_10g(("x",))  # type: ignore[arg-type]
    assert math.isnan(rounded_10g((math.nan,))[0])
    assert rounded_10g((math.inf, -math.inf)) == [math.inf, -math.inf]


# ---- the pipeline: fast path == validating path ---------------------------------------

T0 = 1_700_000_000_000_000_000
ODD = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, 5e-324, 1e-5])


@st.composite
def quote_sequences(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Quotes of a few symbols: mostly plausible, with gaps, duplicates and reordering,
    and in some one field odd (NaN, infinities, 1e308, an int where a float is due, a
    symbol too long)."""
    quotes = []
    ts = {"A": T0, "B": T0}
    for _ in range(draw(st.integers(1, 40))):
        symbol = draw(st.sampled_from(["A", "B"]))
        ts[symbol] += draw(st.sampled_from([1_000_000, 1_000_000, 4_000_000, 3 * 10**9, 0, -1]))
        mid = draw(st.floats(1.0, 1e6))
        half = mid * draw(st.sampled_from([0.0, 1e-4, 1e-3]))
        fields: dict[str, Any] = {
            "symbol": symbol,
            "ts_ns": ts[symbol],
            "bid": mid - half,
            "ask": mid + half,
            "bid_size": draw(st.floats(0.0, 100.0)),
            "ask_size": draw(st.floats(0.0, 100.0)),
            "last": draw(st.none() | st.floats(0.0, 1e6)),
            "volume": draw(st.none() | st.floats(0.0, 100.0)),
            "recv_ts_ns": draw(st.sampled_from([0, ts[symbol], ts[symbol] + 3 * 10**9])),
            "trace_ts_ns": draw(st.sampled_from([0, 5])),
            "source": "test",
        }
        odd = draw(st.sampled_from([None, None, *fields]))
        if odd == "symbol":
            fields["symbol"] = "C" * 65
        elif odd is not None:
            fields[odd] = draw(ODD | st.integers(0, 5) | st.sampled_from([2**63, -(2**63)]))
        quotes.append(fields)
    return quotes


def run(quotes: list[dict[str, Any]], validated: bool) -> list[Any]:
    """Outcomes of the pipeline: wire bytes and flags, dlq reasons, or exceptions."""
    pipe = QuotePipeline(
        FeatureParams(adx_bar_s=0.001, volume_window_s=0.003),
        QualityParams(gap_ms=2, gap_factor=1.5, ffill_max_intervals=3),
    )
    out: list[Any] = []
    for fields in quotes:
        q = RawQuote(**fields) if validated else RawQuote.model_construct(**fields)
        try:
            o = pipe.process(q)
        except Exception as exc:
            out.append(("raised", type(exc).__name__, str(exc)))
            continue
        if o.reason is not None:
            out.append(("dlq", o.reason))
        else:
            assert o.tick is not None and o.features is not None
            out.append(
                (
                    "ok",
                    wire(o.tick),
                    wire(o.features),
                    o.flags,
                    o.tick.__pydantic_fields_set__,
                    o.features.__pydantic_fields_set__,
                )
            )
    return out


def validating(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Message.trusted validate, as the constructor does."""

    def trusted(cls: type[Message], values: dict[str, Any]) -> Message:
        return cls(**values)

    monkeypatch.setattr(Message, "trusted", classmethod(trusted))


@MANY
@given(quote_sequences(), st.booleans())
def test_pipeline_gives_what_the_validating_pipeline_gives(
    quotes: list[dict[str, Any]], validated_quotes: bool
) -> None:
    if validated_quotes:
        try:
            for fields in quotes:
                RawQuote(**fields)
        except ValueError:
            return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "wall_ns", lambda: 123)  # the ingest stamp of unstamped quotes
        fast = run(quotes, validated_quotes)
        validating(mp)
        slow = run(quotes, validated_quotes)
    assert fast == slow


def test_synthetic_outputs_are_unchanged() -> None:
    """A digest of the wire bytes of 4,000 ticks and features of the synthetic market
    (default config, fixed start time and trace stamps), recorded from the code before
    the fast paths, again once the walk gained its pull to the start price
    (``PULL_PER_TICK``), again when the market got its event clock and the windows
    became durations, and again when the shipped clock became one quote per symbol per
    minute (conf/feature_bus.yml)."""
    bus = FeatureBus(load_file("feature_bus").model_copy(update={"start_ts_ns": T0}))
    h = hashlib.sha256()
    for k in range(8):
        quotes = list(bus.market.quotes(500, 1_763_700_000_000_000_000 + k * 10**9))
        for msg in bus.features_of(quotes):
            h.update(wire(msg))
    assert h.hexdigest() == "eef86e8ff0c4bfc4d47c7f7ba80d8b00eedb8564bf05406c24d6656765245952"


@MANY
@given(quote_sequences())
def test_feature_state_of_unvalidated_ticks_is_the_validating_one(
    quotes: list[dict[str, Any]],
) -> None:
    """FeatureState.update straight from ticks nobody checked (model_construct): the
    same features, or the same error, as with validation."""
    from services.feature_bus.features import FeatureState
    from shared.messages import Tick

    def features(validating_path: bool) -> list[Any]:
        state = FeatureState(FeatureParams(adx_bar_s=0.001, volume_window_s=0.003))
        out: list[Any] = []
        for f in quotes:
            tick = Tick.model_construct(**{k: v for k, v in f.items() if k != "recv_ts_ns"})
            with pytest.MonkeyPatch.context() as mp:
                if validating_path:
                    validating(mp)
                try:
                    out.append(wire(state.update(tick, quality="q", source="s")))
                except Exception as exc:
                    out.append(("raised", type(exc).__name__, str(exc)))
        return out

    assert features(False) == features(True)


# ---- metrics --------------------------------------------------------------------------


@MANY
@given(st.lists(st.floats(0.0, 10.0) | st.sampled_from([0.0005, 0.001, 5.0, 1e9]), max_size=40))
def test_quote_latency_exposes_what_the_client_histogram_exposes(values: list[float]) -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from services.feature_bus.metrics import LATENCY_BUCKETS_S, QuoteLatency

    mine, theirs = CollectorRegistry(), CollectorRegistry()
    latency = QuoteLatency()
    mine.register(latency)  # type: ignore[arg-type]
    hist = Histogram(
        QuoteLatency.NAME, QuoteLatency.HELP, ["source"], registry=theirs, buckets=LATENCY_BUCKETS_S
    )
    for v in values:
        latency.observe("synthetic", v)
        hist.labels("synthetic").observe(v)
    if not values:
        hist.labels("synthetic")
        latency.by_source["synthetic"] = ([0.0] * len(latency.bounds_s), [0.0])

    def text(registry: CollectorRegistry) -> list[str]:
        return [
            ln for ln in generate_latest(registry).decode().splitlines() if "_created" not in ln
        ]

    assert text(mine) == text(theirs)


def test_a_batch_counts_as_its_quotes_one_by_one() -> None:
    from prometheus_client import REGISTRY

    def counts(source: str) -> tuple[Any, ...]:
        return (
            REGISTRY.get_sample_value("edgebus_feature_source_quotes_total", {"source": source}),
            REGISTRY.get_sample_value(
                "edgebus_feature_source_quality_score_ratio", {"source": source}
            ),
            REGISTRY.get_sample_value(
                "edgebus_feature_source_latency_seconds_count", {"source": source}
            ),
        )

    quotes = list(FeatureBus(load_file("feature_bus")).market.quotes(300, T0))
    one, batch = FeatureBus(load_file("feature_bus")), FeatureBus(load_file("feature_bus"))
    out: list[Message] = []
    for q in quotes:
        one.handle_quote(q.model_copy(update={"source": "one-by-one"}), out, [])
    batch.handle_quotes([q.model_copy(update={"source": "batch"}) for q in quotes], [], [])
    assert (
        counts("one-by-one") == counts("batch") == (300.0, one.pipeline.score("one-by-one"), 300.0)
    )


def test_a_long_synthetic_run_keeps_prices_near_their_start() -> None:
    """200,000 ticks (50,000 per symbol, a bench run at full speed): without the pull to
    the start price, panics walked prices down by 10 to 100 times."""
    bus = FeatureBus(load_file("feature_bus"))
    for k in range(400):
        for _ in bus.market.quotes(500, 1_763_700_000_000_000_000 + k * 10**9):
            pass
        for walk in bus.market.walks:
            ratio = walk.mid / walk.spec.start_price
            assert 1 / 4 < ratio < 4, (walk.spec.symbol, k, ratio)


def test_messages_built_without_validation_keep_the_model_field_order() -> None:
    """Message.trusted takes a complete dict as it is: its order is the wire order."""
    bus = FeatureBus(load_file("feature_bus"))
    quotes = list(bus.market.quotes(50, T0))
    for msg in [*quotes, *bus.features_of(quotes)]:
        assert list(msg.__dict__) == list(type(msg).model_fields), type(msg).__name__
