"""Alpha models: the seed 004 formulas by hand, the engines' behaviour, the online
meta-learner, and the registry's stats and fault isolation."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.model_router.engines import (
    BreakoutEngine,
    DonchianChannel,
    RangeEngine,
    TrendEngine,
)
from services.model_router.meta_learner import LogisticMetaLearner, sgd_step, sigmoid
from services.model_router.models import (
    AlphaModel,
    BookPressure,
    MaMomentum,
    book_pressure_edge,
    horizon_ns,
    ma_momentum_edge,
)
from services.model_router.registry import CATALOGUE, ModelRegistry, Scorecard
from shared.messages import Features


def feat(**kw: Any) -> Features:
    base: dict[str, Any] = dict(
        symbol="BTC-USD",
        ts_ns=1_700_000_000_000_000_000,
        mid=100.0,
        spread_bps=1.0,
        regime="TREND",
        features_hash="h",
        bid_size=1.0,
        ask_size=1.0,
        ema_short=100.0,
        ema_long=100.0,
    )
    base.update(kw)
    return Features(**base)


def test_book_pressure_seed_formula() -> None:
    # 25 * (3 - 1) / (3 + 1) = 12.5 bps, confidence |0.5|
    assert book_pressure_edge(3.0, 1.0) == (12.5, 0.5)
    assert book_pressure_edge(0.0, 2.0) == (-25.0, 1.0)
    assert book_pressure_edge(0.0, 0.0) == (0.0, 0.0)
    assert BookPressure().predict(feat(bid_size=0.0, ask_size=0.0), "1m") is None


def test_ma_momentum_seed_formula_reads_the_gap_in_percent() -> None:
    # gap = (100.1 - 100) / 100 = 0.1 % -> 40 * 0.1 = 4 bps; confidence 0.1 / 0.25
    edge, conf = ma_momentum_edge(100.1, 100.0)
    assert edge == pytest.approx(4.0) and conf == pytest.approx(0.4)
    assert ma_momentum_edge(102.0, 100.0) == (50.0, 1.0)  # 80 bps clipped to 50
    assert ma_momentum_edge(98.0, 100.0)[0] == -50.0
    assert MaMomentum().predict(feat(ema_long=0.0), "1m") is None


def test_every_model_follows_the_protocol_and_has_metadata() -> None:
    reg = ModelRegistry()
    for model_id, model in reg.models.items():
        assert isinstance(model, AlphaModel)
        assert model.id == model_id and model.description and model.version
    meta = reg.metadata()
    assert (
        set(meta)
        == set(CATALOGUE)
        >= {
            "book_pressure",
            "ma_momentum",
            "meta_logistic",
            "trend",
            "range",
            "breakout",
        }
    )


def test_trend_engine_follows_the_ema_gap_and_is_silent_below_adx_20() -> None:
    # trend = 1e4 * (100.2 / 100 - 1) = 20 bps -> edge 10 bps, confidence min(1, 20/20)
    edge, conf = TrendEngine().predict(feat(ema_short=100.2), "1m") or (0, 0)
    assert edge == pytest.approx(10.0) and conf == pytest.approx(1.0)
    assert TrendEngine().predict(feat(ema_short=100.2, adx=15.0), "1m") == (0.0, 0.0)
    edge, conf = TrendEngine().predict(feat(ema_short=99.8, adx=40.0), "1m") or (0, 0)
    assert edge == pytest.approx(-10.0) and conf == pytest.approx(0.8)


def test_range_engine_fades_the_distance_in_volatility_units() -> None:
    # mid 10 bps above ema_long, vol 5 bps -> z = 2 -> edge -10 bps, confidence 2/3
    f = feat(mid=100.1, ema_long=100.0, volatility_pct=0.05)
    edge, conf = RangeEngine().predict(f, "1m") or (0, 0)
    assert edge == pytest.approx(-10.0) and conf == pytest.approx(2 / 3)
    assert RangeEngine().predict(feat(volatility_pct=0.0), "1m") is None  # waiting


def test_breakout_engine_waits_for_its_window_then_fires_outside_the_channel() -> None:
    eng = BreakoutEngine(window=5)
    for i, mid in enumerate([100.0, 100.2, 99.9, 100.1, 100.0]):
        f = feat(mid=mid, ts_ns=1 + i)
        eng.observe(f)
        assert eng.predict(f, "1m") is None  # window filling
    inside = feat(mid=100.05, ts_ns=10)
    eng.observe(inside)
    assert eng.predict(inside, "1m") is None
    up = feat(mid=100.3, ts_ns=11, volume_ratio=1.2)  # high 100.2 -> ~9.98 bps above
    eng.observe(up)
    edge, conf = eng.predict(up, "1m") or (0, 0)
    assert edge == pytest.approx(10.0 + (100.3 / 100.2 - 1) * 1e4) and conf == pytest.approx(0.6)
    down = feat(mid=99.0, ts_ns=12)
    eng.observe(down)
    assert (eng.predict(down, "1m") or (0, 0))[0] == -30.0  # capped


@given(
    st.integers(min_value=1, max_value=12),
    st.lists(st.sampled_from([99.0, 99.5, 100.0, 100.5, 101.0]) | st.floats(1.0, 1e6), max_size=80),
)
def test_donchian_channel_is_exactly_max_and_min_of_the_last_window(
    window: int, mids: list[float]
) -> None:
    """The monotonic queues give the very values max() and min() over the window give
    (repeated mids included: the sampled prices make ties common)."""
    ch = DonchianChannel(window)
    for i, mid in enumerate(mids):
        ch.push(mid)
        last = mids[max(0, i + 1 - window) : i + 1]
        assert (ch.high, ch.low) == (max(last), min(last))
        assert ch.full == (i + 1 >= window)
        assert len(ch.highs) <= window and len(ch.lows) <= window


def test_only_models_that_keep_state_are_observed() -> None:
    """ModelBase.observe does nothing: the router skips it (an override is called)."""
    reg = ModelRegistry()
    assert {m for m in reg.models if reg.observes(m)} == {"breakout", "leader"}

    class Counting(BookPressure):
        seen = 0

        def observe(self, f: Features) -> None:
            self.seen += 1

    reg.models["book_pressure"] = Counting()
    assert reg.observes("book_pressure")


def test_logistic_step_matches_the_gradient_by_hand() -> None:
    import numpy as np

    w = np.zeros(2)
    x = np.array([1.0, 2.0])
    # q = 0.5; w + 0.1 * ((1 - 0.5) * x - 0) = (0.05, 0.1)
    assert sgd_step(w, x, 1.0, 0.1, 0.0).tolist() == pytest.approx([0.05, 0.1])
    assert sigmoid(0.0) == 0.5 and sigmoid(-800.0) == pytest.approx(0.0)


def test_meta_learner_waits_then_learns_that_pressure_leads_price() -> None:
    ml = LogisticMetaLearner(lr=0.2, min_updates=50)
    rng = random.Random(3)
    bullish = feat(bid_size=3.0, ask_size=1.0)
    assert ml.predict(bullish, "1m") is None  # nothing learned yet
    for _ in range(400):
        bid = rng.uniform(0.1, 2.0)
        ask = rng.uniform(0.1, 2.0)
        f = feat(bid_size=bid, ask_size=ask)
        ml.learn(f, "1m", 5.0 if bid > ask else -5.0)
    edge, conf = ml.predict(bullish, "1m") or (0, 0)
    assert edge > 5.0 and 0 < conf <= 1
    assert (ml.predict(feat(bid_size=1.0, ask_size=3.0), "1m") or (0, 0))[0] < -5.0
    assert ml.predict(bullish, "5m") is None  # trained per horizon


def test_registry_counts_calls_and_treats_a_raising_model_as_waiting() -> None:
    reg = ModelRegistry()

    class Broken(BookPressure):
        def predict(self, f: Features, horizon: str) -> Any:
            raise ZeroDivisionError("bug")

    reg.models["book_pressure"] = Broken()
    assert reg.predict("book_pressure", feat(), "1m") is None
    assert reg.predict("ma_momentum", feat(ema_short=100.1), "1m") is not None
    st = reg.stats["book_pressure"]
    assert (st.calls, st.waits, st.errors) == (1, 1, 1)
    assert reg.stats["ma_momentum"].calls == 1 and reg.stats["ma_momentum"].latency_ns > 0


def test_scorecard_brier_and_hit_rate_by_hand() -> None:
    card = Scorecard()
    assert card.brier == 0.25  # the coin-flip prior before any outcome
    card.add(0.8, True, 1)  # (0.8 - 1)^2 = 0.04
    card.add(0.6, False, 2)  # (0.6 - 0)^2 = 0.36 -> mean 0.2
    assert card.brier == pytest.approx(0.2)
    assert (card.scored, card.hits, card.last_outcome_ns) == (2, 1, 2)


@pytest.mark.parametrize(
    ("text", "ns"),
    [("250ms", 250_000_000), ("30s", 30 * 10**9), ("1m", 60 * 10**9), ("1d", 86_400 * 10**9)],
)
def test_horizons_parse(text: str, ns: int) -> None:
    assert horizon_ns(text) == ns


def test_bad_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="bad horizon"):
        horizon_ns("1 week")
