"""Bars as bars (issue 15 item 8): a replayed bar's open, high and low reach the
features; ADX is Wilder's on the bar's true range; closed hours are not gaps to fill.
Real data: the S&P 500 and NASDAQ daily bars that ``arch`` ships (tests/data_sets.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.feature_bus.config import FeatureParams, QualityParams
from services.feature_bus.indicators import Adx
from services.feature_bus.pipeline import QuotePipeline
from services.feature_bus.replay_rows import read_rows, row_to_quote
from shared.messages import Features, RawQuote

DAY_S = 86_400.0
# Windows for daily bars (docs/feature_bus.md "Windows"): EMAs of 10 and 50 days, a
# 30-day volatility half-life and a 20-day normal volume.
DAILY = FeatureParams(
    ema_short_s=10 * DAY_S,
    ema_long_s=50 * DAY_S,
    vol_halflife_s=30 * DAY_S,
    adx_bar_s=DAY_S,
    volume_window_s=20 * DAY_S,
)
QP = QualityParams()


def bar(day: str, o: float, h: float, lo: float, c: float, volume: float = 1e6) -> RawQuote:
    row = {"ts": day, "symbol": "X", "open": o, "high": h, "low": lo, "close": c}
    return row_to_quote({**row, "volume": volume}, "bars", 2.0, 1, "test")


def test_hand_worked_adx_on_bars() -> None:
    adx = Adx(period=2)
    adx.bar(11.0, 9.0, 10.0)
    # up 1, down -1: +DM 1, -DM 0; TR max(2, |12 - 10|, |10 - 10|) = 2 -> +DI 50, DX 100
    assert adx.bar(12.0, 10.0, 11.5) == 100.0 and adx.plus_di == 50.0
    # up -0.2, down -0.5: no DM; TR max(1.3, 0.3, 1.0) = 1.3; mean of 2: ATR 1.65, +DM 0.5
    assert adx.bar(11.8, 10.5, 11.0) == 100.0
    assert adx.plus_di == pytest.approx(100 * 0.5 / 1.65)
    # up -0.6, down 0.6: -DM 0.6; TR max(1.3, 0.2, 1.1) = 1.3; Wilder n = 2:
    # ATR 1.475, +DM 0.25, -DM 0.3 -> DX 100 * 0.05 / 0.55; ADX (100 + DX) / 2
    adx.bar(11.2, 9.9, 10.0)
    assert adx.plus_di == pytest.approx(100 * 0.25 / 1.475)
    assert adx.minus_di == pytest.approx(100 * 0.3 / 1.475)
    assert adx.value == pytest.approx((100 + 100 * 0.05 / 0.55) / 2)


def test_a_bar_reaches_the_tick_with_its_ohlc_and_adx_uses_its_range() -> None:
    pipe = QuotePipeline(FeatureParams(adx_period=2), QP)
    outs = [
        pipe.process(b)
        for b in (
            bar("2024-01-02", 10.0, 11.0, 9.0, 10.0),
            bar("2024-01-03", 10.0, 12.0, 10.0, 11.5),
        )
    ]
    tick, feats = outs[1].tick, outs[1].features
    assert tick is not None and feats is not None
    assert (tick.open, tick.high, tick.low) == (10.0, 12.0, 10.0)
    assert feats.mid == pytest.approx(11.5)
    assert (feats.adx, feats.plus_di, feats.minus_di) == (100.0, 50.0, 0.0)  # TR 2, not 1.5
    # the wire carries them; quotes carry none
    assert float(tick.to_fields()["high"]) == 12.0
    quote = RawQuote(symbol="Q", ts_ns=10**18, bid=1.0, ask=1.1, bid_size=1, ask_size=1)
    qt = pipe.process(quote).tick
    assert qt is not None and (qt.open, qt.high, qt.low) == (None, None, None)
    assert "high" not in qt.to_fields()


@pytest.mark.parametrize(
    ("ohl", "reason"),
    [
        ((1.0, None, 0.9), "bar: open, high and low must all be given"),
        ((1.0, 0.9, 1.1), "bar: inconsistent or non-finite"),
        ((1.2, 1.1, 0.9), "bar: inconsistent or non-finite"),
        ((1.0, math.nan, 0.9), "bar: inconsistent or non-finite"),
        ((1.0, 1.1, 0.0), "bar: inconsistent or non-finite"),
    ],
)
def test_an_impossible_bar_from_md_raw_is_rejected(
    ohl: tuple[float | None, ...], reason: str
) -> None:
    o, h, lo = ohl
    q = RawQuote(symbol="X", ts_ns=10**18, bid=1.0, ask=1.0, open=o, high=h, low=lo)
    out = QuotePipeline(FeatureParams(), QP).process(q)
    assert out.reason is not None and out.reason.startswith(reason)


def test_weekends_are_neither_gaps_nor_filled() -> None:
    """Daily bars Mon-Fri, a weekend, a long weekend: no flag, nothing filled; 9 days
    without a bar are a gap, still not filled."""
    days = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
    days += ["2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14"]  # a weekend
    days += ["2024-03-19", "2024-03-20"]  # Fri and Mon closed: 5 days
    days += ["2024-03-29"]  # 9 days: a gap
    pipe = QuotePipeline(DAILY, QP)
    flags = [pipe.process(bar(d, 100.0, 101.0, 99.0, 100.0)).flags for d in days]
    assert flags[:-1] == [()] * (len(days) - 1)
    assert flags[-1] == ("gap",)
    # nothing was filled: the EMA's weights are those of the bars alone
    state = next(iter(pipe.tracks.values())).features
    assert state.n == len(days)


def test_quotes_are_still_forward_filled_bars_are_not() -> None:
    qp = QualityParams(gap_ms=0.5, gap_factor=1.5, ffill_max_intervals=5)
    quotes, bars = QuotePipeline(DAILY, qp), QuotePipeline(DAILY, qp)
    for k in (0, 1, 2, 5):  # one interval, then 2 missing
        ts = f"2024-03-0{k + 1}"
        quotes.process(
            bar(ts, 1.0, 1.0, 1.0, 1.0).model_copy(update={"open": None, "high": None, "low": None})
        )
        bars.process(bar(ts, 1.0, 1.0, 1.0, 1.0))
    q_state = next(iter(quotes.tracks.values())).features
    b_state = next(iter(bars.tracks.values())).features
    assert (q_state.n, b_state.n) == (6, 4)  # 2 filled steps for quotes only


# ---- real history ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def spx_ndx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("arch")
    from tests.data_sets import daily_bars_csv

    return daily_bars_csv(tmp_path_factory.mktemp("bars") / "spx_ndx.csv")


def replayed(
    path: Path, fp: FeatureParams
) -> dict[str, list[tuple[dict[str, Any], Features, tuple[str, ...]]]]:
    kind, rows = read_rows(path)
    assert kind == "bars"
    pipe = QuotePipeline(fp, QP)
    out: dict[str, list[tuple[dict[str, Any], Features, tuple[str, ...]]]] = {}
    for line, row in rows:
        o = pipe.process(row_to_quote(row, kind, 2.0, line, "spx_ndx"))
        assert o.features is not None, (line, o.reason)
        out.setdefault(row["symbol"], []).append((row, o.features, o.flags))
    return out


def wilder_adx_reference(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    """Wilder's ADX as he defines it, straightforwardly: TR, +DM, -DM per bar from the
    second on; smoothed sums TR14 = sum of the first n, then TR14 - TR14 / n + TR (the
    same for the DMs); DX from the DIs; ADX = mean of the first n DX, then
    (ADX * (n - 1) + DX) / n. NaN before the first ADX."""
    tr = np.maximum.reduce([h[1:] - lo[1:], abs(h[1:] - c[:-1]), abs(lo[1:] - c[:-1])])
    up, down = h[1:] - h[:-1], lo[:-1] - lo[1:]
    pdm = np.where((up > down) & (up > 0), up, 0.0)
    mdm = np.where((down > up) & (down > 0), down, 0.0)
    out = np.full(len(c), np.nan)
    s_tr, s_p, s_m = tr[:n].sum(), pdm[:n].sum(), mdm[:n].sum()
    dxs: list[float] = []
    adx = math.nan
    for k in range(n - 1, len(tr)):
        if k >= n:
            s_tr += tr[k] - s_tr / n
            s_p += pdm[k] - s_p / n
            s_m += mdm[k] - s_m / n
        pdi, mdi = 100 * s_p / s_tr, 100 * s_m / s_tr
        dx = 100 * abs(pdi - mdi) / (pdi + mdi)
        if len(dxs) < n:
            dxs.append(dx)
            if len(dxs) == n:
                adx = sum(dxs) / n
        else:
            adx = (adx * (n - 1) + dx) / n
        out[k + 1] = adx
    return out


WARM_UP_BARS = 300  # (13/14)^300 ~ 2e-10: the seeds' difference is gone


def test_adx_of_daily_bars_is_wilders_and_ta_libs(spx_ndx: Path) -> None:
    series = replayed(spx_ndx, DAILY)
    assert set(series) == {"SPX", "NDX"} and all(len(v) == 5031 for v in series.values())
    for symbol, rows in series.items():
        h, lo, c = (np.array([float(r[k]) for r, _, _ in rows]) for k in ("high", "low", "close"))
        ours = np.array([f.adx for _, f, _ in rows])
        ref = wilder_adx_reference(h, lo, c, 14)
        np.testing.assert_allclose(ours[WARM_UP_BARS:], ref[WARM_UP_BARS:], rtol=0, atol=1e-6)
        warm = ours[WARM_UP_BARS:]
        assert 5 < warm.min() < warm.max() < 80, symbol  # ADX-like values
        talib = pytest.importorskip("talib")
        np.testing.assert_allclose(
            ours[WARM_UP_BARS:], talib.ADX(h, lo, c, 14)[WARM_UP_BARS:], rtol=0, atol=1e-6
        )
        pdi = np.array([f.plus_di for _, f, _ in rows])
        mdi = np.array([f.minus_di for _, f, _ in rows])
        np.testing.assert_allclose(
            pdi[WARM_UP_BARS:], talib.PLUS_DI(h, lo, c, 14)[WARM_UP_BARS:], atol=1e-6
        )
        np.testing.assert_allclose(
            mdi[WARM_UP_BARS:], talib.MINUS_DI(h, lo, c, 14)[WARM_UP_BARS:], atol=1e-6
        )


def test_daily_bars_read_daily_volatility_and_closed_days_are_not_gaps(spx_ndx: Path) -> None:
    series = replayed(spx_ndx, DAILY)
    for symbol, rows in series.items():
        flags = [f for _, _, fl in rows for f in fl]
        assert "ffill" not in flags
        # Not even the NYSE's week closed after 9/11 (7 days, under 5 typical intervals
        # of 1.45 days: weekends count in the typical interval)
        gap_days = [r["ts"] for r, _, fl in rows if "gap" in fl]
        assert gap_days == [], (symbol, gap_days)
        c = np.array([float(r["close"]) for r, _, _ in rows])
        ts = np.array(
            [datetime.fromisoformat(r["ts"]).replace(tzinfo=UTC).timestamp() for r, _, _ in rows]
        )
        r = np.diff(np.log(c))
        # realized daily volatility over the whole span, per calendar day (as ours:
        # variance over elapsed time) and per session
        per_day = 100 * math.sqrt((r * r).sum() / (ts[-1] - ts[0]) * DAY_S)
        per_session = 100 * r.std()
        vol = np.array([f.volatility_pct for _, f, _ in rows])
        assert per_day == pytest.approx(per_session * math.sqrt(5 / 7), rel=0.05)
        # the 30-day-half-life estimate moves around the realized daily volatility
        # (1.2 % SPX, 1.6 % NDX), not 31 times it
        assert 0.7 * per_day < float(np.median(vol)) < 1.1 * per_day, symbol
        assert 0.5 < per_day < 2.0
