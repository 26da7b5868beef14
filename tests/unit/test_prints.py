"""Prints (trades) from the synthetic market, replay files and the pipeline: seeded,
carried to md.ticks, and never a change to the quotes (docs/feature_bus.md "Prints")."""

from __future__ import annotations

import math
from pathlib import Path

from services.feature_bus.config import FeatureBusConfig, FeatureParams, QualityParams, ReplayParams
from services.feature_bus.features import FeatureState
from services.feature_bus.pipeline import QuotePipeline
from services.feature_bus.replay import file_quotes
from services.feature_bus.synthetic import SyntheticMarket
from shared.config import load_file
from shared.messages import Features, RawQuote, Tick

T0 = 1_763_700_000_000_000_000
QUOTE_KEYS = ("symbol", "ts_ns", "bid", "ask", "bid_size", "ask_size", "volume", "recv_ts_ns")


def market(prints: bool, seed: int = 7) -> SyntheticMarket:
    cfg = load_file("feature_bus").model_copy(
        update={"start_ts_ns": T0, "synthetic_prints": prints, "seed": seed}
    )
    assert isinstance(cfg, FeatureBusConfig)
    return SyntheticMarket(cfg)


def quote_part(q: RawQuote) -> tuple[object, ...]:
    return tuple(getattr(q, k) for k in QUOTE_KEYS)


def test_prints_do_not_change_the_quotes() -> None:
    plain = list(market(False).quotes(4_000))
    with_prints = list(market(True).quotes(4_000))
    assert [quote_part(q) for q in plain] == [quote_part(q) for q in with_prints]
    assert all(q.trade_qty is None for q in plain)
    assert all(q.trade_qty is not None for q in with_prints)


def test_prints_are_deterministic_per_seed() -> None:
    def tape(seed: int) -> list[tuple[object, ...]]:
        return [
            (q.trade_qty, q.trade_side, q.trade_price, q.trade_count)
            for q in market(True, seed).quotes(2_000)
        ]

    assert tape(7) == tape(7)
    assert tape(7) != tape(8)


def test_synthetic_prints_have_the_documented_shape() -> None:
    quotes = list(market(True).quotes(20_000))
    traded = [q for q in quotes if q.trade_count > 0]
    # Poisson(3): no trade 5 % of the time; Poisson(0.3) in illiquid regimes: 74 %.
    assert 0.75 < len(traded) / len(quotes) < 0.97
    for q in traded:
        assert q.trade_qty is not None and q.trade_qty > 0
        assert q.trade_side in (-1, 1)
        assert q.trade_price == (q.ask if q.trade_side > 0 else q.bid)
    for q in quotes:
        if q.trade_count == 0:
            assert (q.trade_qty, q.trade_side, q.trade_price) == (0.0, 0, None)
    sweeps = [
        q
        for q in traded
        if q.trade_qty is not None
        and q.trade_qty > (q.ask_size if q.trade_side > 0 else q.bid_size)
    ]
    assert 0.005 < len(sweeps) / len(traded) < 0.2
    # The aggressor leans with the book: buyers dominate when the bid is the deeper side.
    heavy_bid = [q for q in traded if q.bid_size > 3 * q.ask_size]
    assert sum(q.trade_side for q in heavy_bid) > 0.2 * len(heavy_bid)


def test_the_pipeline_carries_prints_to_the_tick() -> None:
    pipe = QuotePipeline(FeatureParams(), QualityParams())
    q = RawQuote(symbol="X", ts_ns=T0, bid=99.0, ask=101.0, bid_size=1.0, ask_size=1.0)
    tick = pipe.process(q.model_copy(update={"trade_qty": 2.5, "trade_side": 1, "trade_count": 3}))
    assert tick.tick is not None
    assert (tick.tick.trade_qty, tick.tick.trade_side, tick.tick.trade_price) == (2.5, 1, 101.0)
    assert tick.tick.trade_count == 3 and tick.tick.quality == ""
    plain = pipe.process(q.model_copy(update={"ts_ns": T0 + 10**8}))
    assert plain.tick is not None and plain.tick.trade_qty is None
    assert "trade_qty" not in plain.tick.to_fields()  # no prints: the wire is as before
    bad = pipe.process(
        q.model_copy(update={"ts_ns": T0 + 2 * 10**8, "trade_side": 2, "trade_qty": 1.0})
    )
    assert bad.tick is not None and bad.tick.trade_qty is None
    assert "bad_print" in bad.tick.quality


def test_replay_reads_print_columns_and_reports_bad_ones_by_line(tmp_path: Path) -> None:
    path = tmp_path / "prints.csv"
    path.write_text(
        "ts,symbol,bid,ask,bid_size,ask_size,trade_qty,trade_side,trade_price\n"
        f"{T0},BTC-USD,100,101,2,3,1.5,1,101\n"  # line 2: a buy at the ask
        f"{T0 + 1},BTC-USD,100,101,2,3,,,\n"  # line 3: no print
        f"{T0 + 2},BTC-USD,100,101,2,3,abc,1,101\n"  # line 4: qty not a number
        f"{T0 + 3},BTC-USD,100,101,2,3,1,2,101\n"  # line 5: side not -1/0/1
        f"{T0 + 4},BTC-USD,100,101,2,3,-1,1,101\n"  # line 6: negative qty
        f"{T0 + 5},BTC-USD,100,101,2,3,1,-1,-5\n"  # line 7: bad price
        f"{T0 + 6},BTC-USD,100,101,2,3,1,0,\n"  # line 8: qty without a side
        f"{T0 + 7},BTC-USD,100,101,2,3,0.5,-1,\n"  # line 9: a sell, price left to the touch
    )
    bad: list[tuple[int, str]] = []
    quotes = file_quotes(path, ReplayParams(), "s", lambda line, why: bad.append((line, why)))
    assert [line for line, _ in bad] == [4, 5, 6, 7, 8]
    assert bad[0][1].startswith("trade_qty: not a number")
    assert bad[1][1].startswith("trade_side:")
    assert bad[2][1].startswith("trade_qty:")
    assert bad[3][1].startswith("trade_price:")
    assert bad[4][1].startswith("trade_side:")
    got = [(q.line, q.trade_qty, q.trade_side, q.trade_price, q.trade_count) for q in quotes]
    assert got == [(2, 1.5, 1, 101.0, 1), (3, None, 0, None, 0), (9, 0.5, -1, None, 1)]
    pipe = QuotePipeline(FeatureParams(), QualityParams())
    ticks = [pipe.process(q).tick for q in quotes]
    assert ticks[2] is not None and ticks[2].trade_price == 100.0  # the bid it hit


def test_quote_files_without_print_columns_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text(f"ts,symbol,bid,ask,bid_size,ask_size\n{T0},BTC-USD,100,101,2,3\n")
    (q,) = file_quotes(path, ReplayParams(), "s", lambda line, why: None)
    assert (q.trade_qty, q.trade_side, q.trade_price, q.trade_count) == (None, 0, None, 0)


def tick(k: int, qty: float | None, side: int = 0, count: int = 0, ask_size: float = 10.0) -> Tick:
    """Quote k of a tiny sequence: one second apart, bid 99 / ask 101, 10 a side."""
    return Tick(
        trace_ts_ns=1,
        symbol="X",
        ts_ns=T0 + k * 10**9,
        bid=99.0,
        ask=101.0,
        bid_size=10.0,
        ask_size=ask_size,
        trade_qty=qty,
        trade_side=side if qty else None,
        trade_count=count if qty is not None else None,
    )


def test_flow_features_by_hand() -> None:
    """flow_window_s = 1 s and sweep_window_s = 2 s, quotes 1 s apart: w = e^-1."""
    state = FeatureState(FeatureParams(flow_window_s=1.0, sweep_window_s=2.0))
    w = math.exp(-1.0)
    f0 = state.update(tick(0, None))  # no prints yet: the fields are absent
    assert f0.flow_imbalance is None and "flow_imbalance" not in f0.to_fields()
    f1 = state.update(tick(1, 4.0, side=1, count=2))  # 4 bought in 2 trades
    assert f1.flow_imbalance == 1.0
    assert math.isclose(f1.trade_rate_per_s, 2.0)  # 2 trades over 1 s
    assert f1.sweep_bps == 0.0  # 4 < the ask's 10
    f2 = state.update(tick(2, 2.0, side=-1, count=1))  # 2 sold
    assert math.isclose(f2.flow_imbalance, (4 * w - 2) / (4 * w + 2))
    assert math.isclose(f2.trade_rate_per_s, (2 * w + 1) / (w + 1))
    f3 = state.update(tick(3, 15.0, side=1, count=3, ask_size=10.0))  # a sweep: 1.5 x the ask
    signed, total = (4 * w - 2) * w + 15, (4 * w + 2) * w + 15
    assert math.isclose(f3.flow_imbalance, signed / total)
    assert math.isclose(f3.sweep_bps, 15_000.0)
    f4 = state.update(tick(4, None))  # a quote without a print: a quiet second
    assert math.isclose(f4.flow_imbalance, signed * w / (total * w))
    assert math.isclose(
        f4.trade_rate_per_s, ((2 * w + 1) * w + 3) * w / (((w + 1) * w + 1) * w + 1)
    )
    assert math.isclose(f4.sweep_bps, 15_000.0 * math.exp(-0.5))  # 1 s of a 2 s e-folding
    assert f4 == Features.from_fields({k: str(v) for k, v in f4.to_fields().items()})


def test_flow_features_leave_the_other_features_alone() -> None:
    """The same quotes with and without prints: every other feature, the hash included."""
    with_prints, without = FeatureState(FeatureParams()), FeatureState(FeatureParams())
    for k in range(50):
        a = with_prints.update(tick(k, float(k % 7), side=1 - 2 * (k % 2), count=k % 3))
        b = without.update(tick(k, None))
        fa = a.model_dump(exclude={"flow_imbalance", "trade_rate_per_s", "sweep_bps"})
        assert fa == b.model_dump(exclude={"flow_imbalance", "trade_rate_per_s", "sweep_bps"})


def test_a_forward_filled_gap_does_not_repeat_the_print() -> None:
    """A gap filled with copies of the previous quote: quiet intervals, no trades."""
    qp = QualityParams(gap_ms=100, gap_factor=1.5, ffill_max_intervals=5)
    pipe = QuotePipeline(FeatureParams(flow_window_s=5.0), qp)
    q = RawQuote(symbol="X", ts_ns=T0, bid=99.0, ask=101.0, bid_size=10.0, ask_size=10.0)
    by_hand = FeatureState(FeatureParams(flow_window_s=5.0))
    out = None
    for k in [0, 1, 2, 3, 4, 7]:  # 1 s apart, then a gap of 2 missing quotes
        side = 1 if k % 2 == 0 else -1
        quote = q.model_copy(
            update={
                "ts_ns": T0 + k * 10**9,
                "trade_qty": 1.0 + k,
                "trade_side": side,
                "trade_count": 1,
            }
        )
        out = pipe.process(quote)
        if k == 7:
            for filled in (5, 6):
                by_hand.update(tick(filled, 0.0, count=0))
        by_hand_f = by_hand.update(tick(k, 1.0 + k, side=side, count=1))
    assert out is not None and out.features is not None and "ffill" in out.flags
    assert math.isclose(out.features.flow_imbalance, by_hand_f.flow_imbalance)
    assert math.isclose(out.features.trade_rate_per_s, by_hand_f.trade_rate_per_s)


def test_a_sweep_of_an_empty_side_is_capped_at_ten_depths() -> None:
    state = FeatureState(FeatureParams())
    f = state.update(tick(0, 5.0, side=1, count=1, ask_size=0.0))
    assert f.sweep_bps == 1e5
    f = state.update(tick(1, 500.0, side=-1, count=1))  # 50 x the bid's 10
    assert f.sweep_bps == -1e5
