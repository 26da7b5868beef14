"""Event time in feature_bus (issue 15 item 1): windows are durations, the synthetic
market has its own event clock, trace_ts_ns is a wall-clock ingest stamp that no feature
reads, and $EDGEBUS_SOURCE overrides ``source``."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from services.feature_bus import pipeline
from services.feature_bus.config import FeatureBusConfig, FeatureParams, with_source_override
from services.feature_bus.features import FeatureState
from services.feature_bus.indicators import DecayedMean, decay
from services.feature_bus.pipeline import QuotePipeline
from services.feature_bus.synthetic import SyntheticMarket
from shared.config import ConfigError, load_file
from shared.messages import RawQuote, Tick

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def cfg(**update: object) -> FeatureBusConfig:
    """The shipped config on a clock of 50 quotes a second (80 ms per symbol), with
    windows of that scale: the mechanism under test, whatever conf/ ships."""
    c = load_file("feature_bus")
    assert isinstance(c, FeatureBusConfig)
    fast = c.features.model_copy(
        update={
            "ema_short_s": 0.8,
            "ema_long_s": 4.0,
            "vol_halflife_s": 4.0,
            "adx_bar_s": 0.16,
            "volume_window_s": 160.0,
        }
    )
    base = {"start_ts_ns": T0, "nominal_ticks_per_s": 50.0, "features": fast}
    return c.model_copy(update={**base, **update})


# ---- the synthetic market's clock -----------------------------------------------------


def test_the_market_stamps_its_event_time_at_its_nominal_rate() -> None:
    quotes = list(SyntheticMarket(cfg()).quotes(400, 77))
    ts = [q.ts_ns for q in quotes]
    assert ts[0] == T0 and ts == [T0 + k * 20_000_000 for k in range(400)]  # 1/50 s each
    assert len({q.symbol for q in quotes[:4]}) == 4  # round-robin: 80 ms per symbol
    assert {q.trace_ts_ns for q in quotes} == {77}  # the caller's wall-clock stamp
    assert all(q.recv_ts_ns == q.ts_ns for q in quotes)  # simulated: never stale


def test_full_speed_is_a_fast_forwarded_market_not_a_faster_one() -> None:
    slow, fast = SyntheticMarket(cfg(ticks_per_s=50.0)), SyntheticMarket(cfg(ticks_per_s=0.0))
    assert list(slow.quotes(300, 1)) == list(fast.quotes(300, 1))
    odd = list(SyntheticMarket(cfg(nominal_ticks_per_s=3.0)).quotes(5))
    assert [q.ts_ns - T0 for q in odd] == [
        0,
        333_333_333,
        666_666_666,
        1_000_000_000,
        1_333_333_333,
    ]


def test_the_market_is_deterministic_timestamps_included() -> None:
    a = list(SyntheticMarket(cfg()).quotes(1000, 5))
    assert list(SyntheticMarket(cfg()).quotes(600, 5)) == a[:600]
    again = SyntheticMarket(cfg())
    assert list(again.quotes(400, 5)) + list(again.quotes(600, 5)) == a  # batching: no matter
    assert SyntheticMarket(cfg(), start_ts_ns=T0 + S).event_ns == T0 + S


def test_start_0_is_the_wall_clock_when_the_market_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.feature_bus.synthetic as synthetic

    monkeypatch.setattr(synthetic.time, "time_ns", lambda: 5 * T0 // 4)
    market = SyntheticMarket(cfg(start_ts_ns=0))
    assert next(iter(market.quotes(1))).ts_ns == 5 * T0 // 4


# ---- trace_ts_ns: stamped at ingest, read by no feature -------------------------------


def test_an_unstamped_quote_is_stamped_at_ingest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "wall_ns", lambda: 42)
    pipe = QuotePipeline(FeatureParams(), load_file("feature_bus").quality)  # type: ignore[attr-defined]
    replayed = RawQuote(symbol="X", ts_ns=T0, bid=1.0, ask=1.1, bid_size=1, ask_size=1)
    out = pipe.process(replayed)  # a replayed row: historic ts, no trace
    assert out.tick is not None and out.features is not None
    assert out.tick.trace_ts_ns == out.features.trace_ts_ns == 42
    stamped = replayed.model_copy(update={"ts_ns": T0 + 1, "trace_ts_ns": 7})
    assert pipe.process(stamped).features.trace_ts_ns == 7  # type: ignore[union-attr]


def test_trace_ts_ns_changes_no_feature() -> None:
    quotes = list(SyntheticMarket(cfg()).quotes(2000, 1))

    def features(trace: int) -> list[tuple[object, ...]]:
        pipe = QuotePipeline(cfg().features, cfg().quality)
        out = []
        for q in quotes:
            f = pipe.process(q.model_copy(update={"trace_ts_ns": trace})).features
            assert f is not None
            out.append(tuple(v for k, v in f.__dict__.items() if k != "trace_ts_ns"))
        return out

    assert features(1) == features(T0 * 2)


# ---- windows in time ------------------------------------------------------------------


def test_decayed_mean_is_pandas_ewm_with_times() -> None:
    pd = pytest.importorskip("pandas")
    times_s = [0.0, 0.08, 0.16, 0.16, 1.0, 7.5, 7.58, 30.0]
    x = [100.0, 101.0, 99.5, 99.7, 102.0, 98.0, 98.5, 103.0]
    half_life_s = 0.4
    m, out, prev = DecayedMean(), [], 0.0
    for t, v in zip(times_s, x, strict=True):
        out.append(m.update(v, decay(t - prev, half_life_s / math.log(2))))
        prev = t
    times = pd.to_datetime([int(t * 1e9) for t in times_s], unit="ns")
    want = pd.Series(x).ewm(halflife=pd.Timedelta(seconds=half_life_s), times=times).mean()
    assert out == pytest.approx(list(want), rel=1e-12)


def test_the_same_ticks_at_twice_the_spacing_with_twice_the_windows_give_the_same_features() -> (
    None
):
    """Windows are durations: stretching time and windows alike changes nothing but the
    volatility, which is per unit of time (half as large per second: 1/sqrt(2))."""
    quotes = list(SyntheticMarket(cfg()).quotes(3000, 1))
    p = cfg().features
    windows = ("ema_short_s", "ema_long_s", "vol_halflife_s", "adx_bar_s", "volume_window_s")
    p2 = p.model_copy(update={k: 2 * getattr(p, k) for k in windows})
    a, b = FeatureState(p), FeatureState(p2)
    for q in quotes[::4]:  # one symbol
        tick = Tick(
            symbol=q.symbol,
            ts_ns=q.ts_ns,
            bid=q.bid,
            ask=q.ask,
            bid_size=q.bid_size,
            ask_size=q.ask_size,
        )
        fa = a.update(tick)
        fb = b.update(tick.model_copy(update={"ts_ns": T0 + 2 * (q.ts_ns - T0)}))
        assert (fa.ema_short, fa.ema_long, fa.adx, fa.volume_ratio) == pytest.approx(
            (fb.ema_short, fb.ema_long, fb.adx, fb.volume_ratio), rel=1e-9
        )
        assert fb.volatility_pct == pytest.approx(fa.volatility_pct / math.sqrt(2), rel=1e-9)


@pytest.mark.parametrize(
    "key",
    [
        "ema_short_ticks",
        "ema_long_ticks",
        "vol_halflife_ticks",
        "vol_horizon_ticks",
        "adx_bar_ticks",
        "volume_window_ticks",
    ],
)
def test_the_former_tick_keys_are_refused_by_name(key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        FeatureParams(**{key: 10})  # type: ignore[arg-type]


def test_windows_must_be_positive_durations() -> None:
    with pytest.raises(ValidationError, match="ema_short_s"):
        FeatureParams(ema_short_s=0)
    with pytest.raises(ValidationError, match="ema_short_s must be smaller than ema_long_s"):
        FeatureParams(ema_short_s=5, ema_long_s=4)


# ---- EDGEBUS_SOURCE -------------------------------------------------------------------


def test_edgebus_source_overrides_the_configured_source() -> None:
    c = cfg()
    assert with_source_override(c, {}) is c
    assert with_source_override(c, {"EDGEBUS_SOURCE": "replay"}).source == "replay"
    assert with_source_override(c, {"EDGEBUS_SOURCE": "websocket"}).source == "websocket"
    with pytest.raises(ConfigError, match="EDGEBUS_SOURCE='kafka': must be one of synthetic"):
        with_source_override(c, {"EDGEBUS_SOURCE": "kafka"})


def test_the_service_applies_edgebus_source(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.feature_bus.service import FeatureBus

    monkeypatch.setenv("EDGEBUS_SOURCE", "replay")
    bus = FeatureBus(cfg())
    assert bus.config.source == "replay"
    bus.on_config(cfg(seed=8))  # a reload keeps the override
    assert bus.config.source == "replay" and bus.config.seed == 8
