"""Incremental features equal a batch numpy reference on the same data (issue 3), on
irregularly spaced quotes: every window is a duration of event time."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.feature_bus.config import FeatureParams
from services.feature_bus.features import FeatureState
from shared.messages import Tick

S = 1_000_000_000


def decayed_mean_ref(t_s: np.ndarray, x: np.ndarray, tau_s: float) -> np.ndarray:
    """sum_i w_i x_i / sum_i w_i over i <= t, w_i = exp(-(t - t_i) / tau), as a matrix."""
    age = (t_s[:, None] - t_s[None, :]).clip(min=0)
    w = np.tril(np.exp(-age / tau_s))
    return (w @ x) / w.sum(axis=1)


def variance_rate_ref(t_s: np.ndarray, r: np.ndarray, dt_s: np.ndarray, tau_s: float):  # type: ignore[no-untyped-def]
    age = (t_s[:, None] - t_s[None, :]).clip(min=0)
    w = np.tril(np.exp(-age / tau_s))
    den = w @ dt_s
    return np.where(den > 0, (w @ (r * r)) / np.where(den > 0, den, 1.0), 0.0)


def wilder_ref(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the first n values, then an RMA with alpha 1/n seeded by that mean."""
    out = np.cumsum(x) / np.arange(1, len(x) + 1)
    if len(x) > n:
        seed = out[n - 1]
        rest = x[n:]
        b = 1.0 - 1.0 / n
        t = np.arange(len(rest))
        w = np.tril((1.0 / n) * b ** (t[:, None] - t[None, :]).clip(min=0))
        out[n:] = w @ rest + seed * b ** (t + 1)
    return out


def adx_ref(
    ts_ns: np.ndarray, mid: np.ndarray, period: int, bar_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ADX, +DI, -DI after each tick on time bars [k bar, (k+1) bar) of the epoch; a bar
    closes at the first tick of a later bar, and the values hold until the next close."""
    bucket = ts_ns // bar_ns
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    ends = np.concatenate([starts[1:], [len(mid)]])
    h = np.array([mid[a:b].max() for a, b in zip(starts, ends, strict=True)])
    lo = np.array([mid[a:b].min() for a, b in zip(starts, ends, strict=True)])
    c = np.array([mid[b - 1] for b in ends])
    adx_t, pdi_t, mdi_t = (np.zeros(len(mid)) for _ in range(3))
    closed = len(starts) - 1  # the last bar is still open
    if closed < 2:
        return adx_t, pdi_t, mdi_t
    h, lo, c = h[:closed], lo[:closed], c[:closed]
    up, down = h[1:] - h[:-1], lo[:-1] - lo[1:]
    pdm = np.where((up > down) & (up > 0), up, 0.0)
    mdm = np.where((down > up) & (down > 0), down, 0.0)
    tr = np.maximum.reduce([h[1:] - lo[1:], abs(h[1:] - c[:-1]), abs(lo[1:] - c[:-1])])
    atr, apdm, amdm = (wilder_ref(v, period) for v in (tr, pdm, mdm))
    safe = np.where(atr > 0, atr, 1.0)
    pdi = np.where(atr > 0, 100 * apdm / safe, 0.0)
    mdi = np.where(atr > 0, 100 * amdm / safe, 0.0)
    s = pdi + mdi
    dx = np.where(s > 0, 100 * abs(pdi - mdi) / np.where(s > 0, s, 1.0), 0.0)
    adx = wilder_ref(dx, period)
    for k in range(1, closed):  # bar k closes at the first tick of bar k + 1
        sl = slice(starts[k + 1], starts[k + 2] if k + 2 < len(starts) else len(mid))
        adx_t[sl], pdi_t[sl], mdi_t[sl] = adx[k - 1], pdi[k - 1], mdi[k - 1]
    return adx_t, pdi_t, mdi_t


def window_mean_ref(ts_ns: np.ndarray, x: np.ndarray, window_ns: int) -> np.ndarray:
    """Mean of the values seen so far whose time is in (t - window, t]."""
    return np.array(
        [x[: i + 1][ts_ns[: i + 1] > ts_ns[i] - window_ns].mean() for i in range(len(x))]
    )


prices = st.lists(st.floats(min_value=50.0, max_value=150.0), min_size=2, max_size=120)
# Spacing in ms: mostly regular, some bursts (0: the same nanosecond) and pauses.
spacing_ms = st.lists(st.sampled_from([0, 1, 80, 80, 80, 250, 1000, 7000]), min_size=120)


@settings(max_examples=60, deadline=None)
@given(
    mids=prices,
    gaps_ms=spacing_ms,
    spread_bps=st.floats(min_value=0.0, max_value=100.0),
    # Sizes of 0 or from 1e-3 on: subnormal sizes lose the digits a relative check needs.
    sizes=st.lists(st.just(0.0) | st.floats(1e-3, 1e3), min_size=120, max_size=120),
    ema_short_s=st.sampled_from([0.08, 0.5, 0.8, 3.0]),
    bar_s=st.sampled_from([0.08, 0.16, 0.5, 2.0]),
    period=st.integers(2, 6),
    window_s=st.sampled_from([0.1, 1.0, 5.0, 30.0]),
)
def test_incremental_features_equal_the_batch_reference(
    mids: list[float],
    gaps_ms: list[int],
    spread_bps: float,
    sizes: list[float],
    ema_short_s: float,
    bar_s: float,
    period: int,
    window_s: float,
) -> None:
    p = FeatureParams(
        ema_short_s=ema_short_s,
        ema_long_s=ema_short_s * 5,
        vol_halflife_s=0.56,
        adx_period=period,
        adx_bar_s=bar_s,
        volume_window_s=window_s,
    )
    state = FeatureState(p)
    mid = np.array(mids)
    n = len(mid)
    ts_ns = 1_700_000_000 * S + np.cumsum(np.array(gaps_ms[:n], dtype=np.int64) * 1_000_000)
    half = mid * spread_bps / 2e4
    bid_size = np.array(sizes[:n])
    ask_size = np.array(sizes[::-1][:n])
    got = [
        state.update(
            Tick(
                symbol="X",
                ts_ns=int(t),
                bid=m - h,
                ask=m + h,
                bid_size=float(bs),
                ask_size=float(a),
            )
        )
        for t, m, h, bs, a in zip(ts_ns, mid, half, bid_size, ask_size, strict=True)
    ]
    t_s = (ts_ns - ts_ns[0]) / 1e9
    mids_got = np.array([f.mid for f in got])
    np.testing.assert_allclose(mids_got, mid, rtol=1e-12)
    ema_s = decayed_mean_ref(t_s, mids_got, ema_short_s / 2)
    np.testing.assert_allclose([f.ema_short for f in got], ema_s, rtol=1e-9)
    ema_l = decayed_mean_ref(t_s, mids_got, ema_short_s * 5 / 2)
    np.testing.assert_allclose([f.ema_long for f in got], ema_l, rtol=1e-9)
    r = np.concatenate([[0.0], np.diff(np.log(mids_got))])
    dt_s = np.concatenate([[0.0], np.diff(t_s)])
    var = variance_rate_ref(t_s, r, dt_s, 0.56 / math.log(2))
    vol = 100 * np.sqrt(var * 86_400)
    np.testing.assert_allclose([f.volatility_pct for f in got], vol, rtol=1e-7, atol=1e-9)
    ret = np.concatenate([[0.0], (mids_got[1:] / mids_got[:-1] - 1) * 1e4])
    np.testing.assert_allclose([f.return_bps for f in got], ret, rtol=1e-9, atol=1e-9)
    adx, pdi, mdi = adx_ref(ts_ns, mids_got, period, round(bar_s * S))
    np.testing.assert_allclose([f.adx for f in got], adx, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose([f.plus_di for f in got], pdi, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose([f.minus_di for f in got], mdi, rtol=1e-7, atol=1e-7)
    volume = bid_size + ask_size
    fast = decayed_mean_ref(t_s, volume, ema_short_s / 2)
    mean = window_mean_ref(ts_ns, volume, round(window_s * S))
    ratio = np.where(mean > 0, fast / np.where(mean > 0, mean, 1.0), 1.0)
    np.testing.assert_allclose([f.volume_ratio for f in got], ratio, rtol=1e-7, atol=1e-9)
    depth = bid_size + ask_size
    pressure = np.where(depth > 0, (bid_size - ask_size) / np.where(depth > 0, depth, 1), 0.0)
    np.testing.assert_allclose([f.book_pressure for f in got], pressure, rtol=1e-9, atol=1e-12)
