"""Each data-quality case with hand-worked numbers (seed 001 §4 as quoted in issue 3),
and the flags' counters and dashboard panels."""

from __future__ import annotations

import math

import pytest
from prometheus_client import REGISTRY

from services.feature_bus import metrics as fm
from services.feature_bus.config import FeatureParams, QualityParams
from services.feature_bus.pipeline import QuotePipeline
from services.feature_bus.quality import FLAG_NAMES, QualityScore, SymbolTrack
from services.feature_bus.service import FeatureBus
from shared.config import load_file
from shared.messages import Message, RawQuote
from tests.dashboards import load, panels

MS = 1_000_000
T0 = 1_700_000_000_000 * MS
QP = QualityParams(
    stale_ms=2_000, max_price_jump_pct=2.0, gap_ms=500, gap_factor=1.5, ffill_max_intervals=5
)


def q(ts_ms: float, bid: float = 99.0, ask: float = 101.0, **kw: object) -> RawQuote:
    base: dict[str, object] = {"bid_size": 1.0, "ask_size": 1.0, "source": "test"}
    base.update(kw)
    return RawQuote(symbol="X", ts_ns=T0 + int(ts_ms * MS), bid=bid, ask=ask, **base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        (q(0, bid=float("nan")), "non-finite bid: nan"),
        (q(0, ask=float("inf")), "non-finite ask: inf"),
        (q(0, bid=0.0), "non-positive price: bid=0.0 ask=101.0"),
        (q(0, bid=-1.0), "non-positive price: bid=-1.0 ask=101.0"),
        (q(0, bid_size=-2.0), "negative size: bid_size=-2.0 ask_size=1.0"),
        (q(0, bid=101.5, ask=101.0), "crossed book: bid 101.5 > ask 101.0"),
        (RawQuote(symbol="X", ts_ns=0, bid=1, ask=2), "invalid timestamp: ts_ns=0"),
    ],
)
def test_impossible_quotes_are_rejected_with_a_reason(quote: RawQuote, reason: str) -> None:
    v = SymbolTrack().check(quote, QP)
    assert v.reason == reason


def test_locked_book_is_flagged_not_rejected() -> None:
    v = SymbolTrack().check(q(0, bid=100.0, ask=100.0), QP)
    assert v.reason is None and v.flags == ("locked",)


def test_out_of_order_and_duplicate_are_rejected() -> None:
    t = SymbolTrack()
    assert t.check(q(1000), QP).reason is None
    older = t.check(q(999), QP)
    assert older.reason == f"out of order: ts_ns {T0 + 999 * MS} < previous {T0 + 1000 * MS} (X)"
    assert (
        t.check(q(1000), QP).reason == f"duplicate of the previous quote at ts_ns {T0 + 1000 * MS}"
    )
    # Same time, new prices: a real second update in the same nanosecond, accepted.
    assert t.check(q(1000, bid=99.5), QP).reason is None


def test_stale_when_received_more_than_stale_ms_after_exchange_time() -> None:
    t = SymbolTrack()
    # exchange time 0 ms, received 2,500 ms later: 2,500 > 2,000 -> stale
    assert t.check(q(0, recv_ts_ns=T0 + 2_500 * MS), QP).flags == ("stale",)
    # received 1,999 ms later: fresh
    assert t.check(q(10, recv_ts_ns=T0 + 2_009 * MS), QP).flags == ()
    # historic data (recv_ts_ns = 0) is never stale
    assert t.check(q(20), QP).flags == ()


def test_jump_beyond_max_price_jump_pct() -> None:
    t = SymbolTrack()
    t.check(q(0, bid=99.0, ask=101.0), QP)  # mid 100
    # mid 102.5: |102.5 / 100 - 1| * 100 = 2.5 % > 2 % -> jump
    assert t.check(q(10, bid=101.5, ask=103.5), QP).flags == ("jump",)
    # mid 104.5: 104.5 / 102.5 - 1 = 1.95 % <= 2 % -> clean
    assert t.check(q(20, bid=103.5, ask=105.5), QP).flags == ()


def test_short_gap_is_forward_filled_and_long_gap_is_marked() -> None:
    t = SymbolTrack()
    for ms in (0, 1000, 2000, 3000):  # typical interval T = 1,000 ms
        assert t.check(q(ms), QP).flags == ()
    assert t.interval_ns == 1000 * MS
    # dt = 3,000 ms > max(500, 1.5 * 1,000): a gap; round(3000 / 1000) - 1 = 2 missing
    v = t.check(q(6000), QP)
    assert v.flags == ("ffill",) and v.ffill_steps == 2 and v.ffill_interval_ns == 1000 * MS
    # dt = 10,000 ms: 9 missing intervals > ffill_max_intervals 5 -> marked, not filled
    v = t.check(q(16000), QP)
    assert v.flags == ("gap",) and v.ffill_steps == 0
    # the gap did not stretch T: the next 1,000 ms step is normal
    assert t.check(q(17000), QP).flags == ()


def test_forward_fill_steps_the_features_with_the_previous_quote() -> None:
    # EMA span 2 / ln 2 s: a quote's weight halves every second of event time.
    fp = FeatureParams(ema_short_s=1.0, ema_long_s=2 / math.log(2), adx_bar_s=1.0)
    pipe = QuotePipeline(fp, QP)
    for ms, bid in ((0, 99.0), (1000, 99.0), (2000, 101.0)):  # mids 100, 100, 102
        pipe.process(q(ms, bid=bid, ask=bid + 2))
    out = pipe.process(q(5000, bid=103.0, ask=105.0))  # 2 missing intervals, then mid 104
    assert out.flags == ("ffill",) and out.features is not None
    # The mean of the mids at 0..5 s (102 filled in at 3 s and 4 s), weights 2^-age:
    want = (100 / 32 + 100 / 16 + 102 / 8 + 102 / 4 + 102 / 2 + 104) / (63 / 32)
    assert out.features.ema_long == pytest.approx(want)  # 102.9206...
    assert out.features.quality == "ffill" and out.tick is not None and out.tick.quality == "ffill"


def test_rejected_quote_leaves_feature_state_untouched() -> None:
    pipe = QuotePipeline(FeatureParams(), QP)
    pipe.process(q(0))
    assert pipe.process(q(10, bid=102.0, ask=101.0)).reason is not None
    nxt = pipe.process(q(20))
    assert nxt.features is not None and nxt.features.return_bps == 0.0


def test_quality_score_is_an_ewma_of_clean_quotes() -> None:
    s = QualityScore(half_life_quotes=1)  # lambda = 0.5
    assert s.update(False) == 0.5  # 0.5 * 1 + 0.5 * 0
    assert s.update(True) == 0.75  # 0.5 * 0.5 + 0.5 * 1
    assert s.update(False) == 0.375
    assert math.isclose(QualityScore(200).lam, 0.5 ** (1 / 200))


def test_nan_survives_the_wire_to_reach_the_gate() -> None:
    raw = q(0, bid=float("nan"))
    back = RawQuote.from_fields({k: str(v) for k, v in raw.to_fields().items()})
    assert math.isnan(back.bid)


def test_flagged_quotes_are_counted_per_symbol_and_flag() -> None:
    svc = FeatureBus(load_file("feature_bus"))  # type: ignore[arg-type]
    before = _flags("unit", "LOCKED-1", "locked")
    out: list[Message] = []
    for ts_ms in (0, 100):
        locked = q(ts_ms, bid=100.0, ask=100.0, source="unit").model_copy(
            update={"symbol": "LOCKED-1"}
        )
        svc.handle_quote(locked, out, [])
    assert _flags("unit", "LOCKED-1", "locked") == before + 2
    assert _flags("unit", "LOCKED-1", "jump") == 0.0


def test_a_watched_source_has_every_flag_at_zero_and_a_stale_gauge_read_at_scrape() -> None:
    problems: list[str] = []
    fm.watch_source("unit-watched", ["A", "B"], lambda: problems)
    for symbol in ("A", "B"):
        for flag in FLAG_NAMES:
            assert _flags("unit-watched", symbol, flag) == 0.0
    stale = {"source": "unit-watched"}
    assert REGISTRY.get_sample_value("edgebus_feature_source_stale", stale) == 0.0
    problems.append("A: no quote for 2.5 s")
    assert REGISTRY.get_sample_value("edgebus_feature_source_stale", stale) == 1.0


def test_the_edge_risk_dashboard_shows_flags_per_symbol_the_score_and_staleness() -> None:
    exprs = {
        p["title"]: [t["expr"] for t in p.get("targets", [])] for p in panels(load("edge-risk"))
    }
    flags = " ".join(exprs["Data-quality flags by symbol"])
    assert "edgebus_feature_quality_flags_total" in flags and "by (symbol, flag)" in flags
    assert 'symbol=~"$symbol"' in flags
    score = " ".join(exprs["Quote quality score and feed staleness"])
    assert "edgebus_feature_source_quality_score_ratio" in score
    assert "edgebus_feature_source_stale" in score


def _flags(source: str, symbol: str, flag: str) -> float:
    labels = {"source": source, "symbol": symbol, "flag": flag}
    return REGISTRY.get_sample_value("edgebus_feature_quality_flags_total", labels) or 0.0
