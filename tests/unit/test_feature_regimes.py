"""Features and regimes with hand-worked numbers (seed 003 §2 as quoted in issue 3)."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from services.feature_bus.config import FeatureParams
from services.feature_bus.features import FeatureState, classify, features_hash
from services.feature_bus.indicators import Adx
from services.feature_bus.pipeline import QuotePipeline
from services.feature_bus.synthetic import SyntheticMarket
from shared.config import load_file
from shared.messages import Tick

P = FeatureParams()


def regime(**kw: float | str) -> str:
    base: dict[str, float | str] = {
        "adx": 22.0,
        "plus_di": 20.0,
        "minus_di": 20.0,
        "trend_bps": 0.0,
        "volatility_pct": 2.0,
        "volume_ratio": 1.0,
        "spread_bps": 2.0,
        "previous": "RANGE",
    }
    base.update(kw)
    return classify(p=P, **base)  # type: ignore[arg-type]


def test_trend_needs_adx_above_25_and_a_direction() -> None:
    assert regime(adx=30, plus_di=35, minus_di=10, trend_bps=8) == "TREND"
    assert regime(adx=30, plus_di=10, minus_di=35, trend_bps=-8) == "TREND"
    # ADX high but the EMAs disagree with the dominant DI: not directional
    assert regime(adx=30, plus_di=35, minus_di=10, trend_bps=-8, previous="RANGE") == "RANGE"
    assert regime(adx=25, plus_di=35, minus_di=10, trend_bps=8) == "RANGE"  # 25 is not > 25


def test_range_needs_adx_below_20_and_volatility_1_to_4_pct() -> None:
    assert regime(adx=15, volatility_pct=1.0, previous="TREND") == "RANGE"
    assert regime(adx=15, volatility_pct=4.0, previous="TREND") == "RANGE"
    assert regime(adx=15, volatility_pct=0.5, previous="TREND") == "TREND"  # too calm: keep
    assert regime(adx=15, volatility_pct=4.5, previous="TREND") == "TREND"


def test_panic_needs_high_vol_falling_and_high_volume() -> None:
    assert regime(volatility_pct=6, trend_bps=-10, volume_ratio=2.0) == "PANIC"
    assert regime(volatility_pct=6, trend_bps=10, volume_ratio=2.0) == "RANGE"  # rising
    assert regime(volatility_pct=6, trend_bps=-10, volume_ratio=1.2) == "RANGE"  # quiet
    assert regime(volatility_pct=5, trend_bps=-10, volume_ratio=2.0) == "RANGE"  # 5 not > 5


def test_illiquid_on_thin_volume_or_wide_spread_first() -> None:
    assert regime(volume_ratio=0.29) == "ILLIQUID"
    assert regime(spread_bps=50.5) == "ILLIQUID"
    assert regime(spread_bps=60, volatility_pct=6, trend_bps=-10, volume_ratio=2.0) == "ILLIQUID"
    assert regime(volume_ratio=0.3, spread_bps=50) == "RANGE"


def test_between_thresholds_the_previous_regime_stays() -> None:
    assert regime(adx=22, previous="TREND") == "TREND"
    assert regime(adx=22, previous="PANIC") == "PANIC"


S = 1_000_000_000  # ns per second


def tick(bid: float, ask: float, bid_size: float = 3.0, ask_size: float = 1.0, ts: int = S) -> Tick:
    return Tick(symbol="X", ts_ns=ts, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size)


def test_hand_worked_features_of_two_ticks() -> None:
    # Per second of event time the EMA weights decay by 1/2 (short) and 1/sqrt(2) (long),
    # the volatility's by 1/2.
    p = FeatureParams(ema_short_s=2 / math.log(2), ema_long_s=4 / math.log(2), vol_halflife_s=1)
    st = FeatureState(p)
    f1 = st.update(tick(99, 101, 3, 1, ts=1 * S))
    assert (f1.mid, f1.spread_bps, f1.book_pressure) == (100.0, 200.0, 0.5)  # 2/100, 2/4
    assert (f1.ema_short, f1.return_bps, f1.volatility_pct, f1.volume_ratio) == (100, 0, 0, 1)
    f2 = st.update(tick(101, 103, 1, 3, ts=2 * S))  # 1 s later: mid 102, depth 4 again
    assert f2.ema_short == pytest.approx((0.5 * 100 + 102) / 1.5)
    w = 0.5**0.5
    assert f2.ema_long == pytest.approx((w * 100 + 102) / (w + 1))
    assert f2.return_bps == pytest.approx(200.0)
    # one return of ln(1.02) over 1 s: variance per second ln(1.02)^2, daily * 86,400
    assert f2.volatility_pct == pytest.approx(100 * math.log(1.02) * math.sqrt(86_400))
    assert f2.trend_bps == pytest.approx((f2.ema_short / f2.ema_long - 1) * 1e4)
    assert f2.book_pressure == -0.5


def test_hand_worked_adx_on_time_bars() -> None:
    adx = Adx(period=2, bar_s=1.0)
    for t, price in enumerate((10.0, 11.0, 12.0, 11.0)):  # one price per 1-s bar
        adx.update(t * S, price)
    # a bar closes when the next one opens: bars 10, 11, 12 closed, each rise +DM 1,
    # -DM 0, TR 1 -> +DI 100, -DI 0, DX 100, ADX 100
    assert (adx.plus_di, adx.minus_di, adx.value) == (100.0, 0.0, 100.0)
    adx.update(4 * S, 11.5)  # closes bar 11: fall, -DM 1; Wilder n=2: +DM 0.5, -DM 0.5
    assert (adx.plus_di, adx.minus_di, adx.value) == (50.0, 50.0, 50.0)


def test_adx_is_held_between_bar_closes() -> None:
    adx = Adx(period=2, bar_s=1.0)
    # bars [0 s, 1 s): H 10.5 L 10 C 10.5; [1 s, 2 s): H 11.5 L 11 C 11.5
    for t, price in ((0.0, 10.0), (0.5, 10.5), (1.0, 11.0), (1.5, 11.5), (2.0, 5.0)):
        adx.update(int(t * S), price)
    assert adx.value == 100.0  # the price at 2 s closed the second bar
    adx.update(int(2.5 * S), 3.0)  # same bar: nothing changes until it closes
    assert adx.value == 100.0
    adx.update(10 * S, 4.0)  # 7 empty seconds are no bars; the bar of 2 s closes
    assert adx.value < 100.0


def test_features_hash_is_stable_and_value_sensitive() -> None:
    assert features_hash((1.0, 2.0)) == features_hash((1.0, 2.0 + 1e-13))
    assert features_hash((1.0, 2.0)) != features_hash((1.0, 2.000001))
    assert len(features_hash((1.0,))) == 16


def test_synthetic_market_visits_all_four_regimes_deterministically() -> None:
    """The shipped market, whose clock is one quote per symbol per minute (the scale its
    per-tick moves were made for: 1.5-6 bps per minute is 0.6-2.3 % daily), with the
    shipped windows."""
    cfg = load_file("feature_bus").model_copy(update={"start_ts_ns": 1_700_000_000_000_000_000})
    counts: list[Counter[str]] = []
    for _ in range(2):
        market = SyntheticMarket(cfg)  # type: ignore[arg-type]
        pipe = QuotePipeline(cfg.features, cfg.quality)  # type: ignore[attr-defined]
        c: Counter[str] = Counter()
        for quote in market.quotes(6000, 1):
            out = pipe.process(quote)
            assert out.features is not None, out.reason
            c[out.features.regime] += 1
        counts.append(c)
    assert counts[0] == counts[1]  # seeded: the same sequence every time
    assert set(counts[0]) == {"TREND", "RANGE", "PANIC", "ILLIQUID"}
    assert min(counts[0].values()) > 200, counts[0]
