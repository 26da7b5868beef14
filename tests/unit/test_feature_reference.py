"""Incremental features equal a batch numpy reference on the same data (issue 3)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.feature_bus.config import FeatureParams
from services.feature_bus.features import FeatureState
from shared.messages import Tick


def ema_ref(x: np.ndarray, n: int) -> np.ndarray:
    """e_t = (1-a)^t x_0 + sum_{k=1..t} a (1-a)^(t-k) x_k, as one matrix product."""
    a = 2.0 / (n + 1)
    t = np.arange(len(x))
    w = np.tril(a * (1 - a) ** (t[:, None] - t[None, :]).clip(min=0))
    w[:, 0] = (1 - a) ** t
    return w @ x


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


def adx_ref(mid: np.ndarray, period: int, bar: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ADX, +DI, -DI after each tick (held between bar closes)."""
    nb = len(mid) // bar
    bars = mid[: nb * bar].reshape(nb, bar)
    h, lo, c = bars.max(axis=1), bars.min(axis=1), bars[:, -1]
    adx_t, pdi_t, mdi_t = (np.zeros(len(mid)) for _ in range(3))
    if nb < 2:
        return adx_t, pdi_t, mdi_t
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
    for k in range(1, nb):  # bar k closes at tick (k+1)*bar - 1 and holds until the next
        sl = slice((k + 1) * bar - 1, (k + 2) * bar - 1 if k + 1 < nb else len(mid))
        adx_t[sl], pdi_t[sl], mdi_t[sl] = adx[k - 1], pdi[k - 1], mdi[k - 1]
    return adx_t, pdi_t, mdi_t


def rolling_mean_ref(x: np.ndarray, n: int) -> np.ndarray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(1, len(x) + 1)
    lo = np.maximum(0, i - n)
    return (c[i] - c[lo]) / (i - lo)


prices = st.lists(st.floats(min_value=50.0, max_value=150.0), min_size=2, max_size=120)


@settings(max_examples=60, deadline=None)
@given(
    mids=prices,
    spread_bps=st.floats(min_value=0.0, max_value=100.0),
    sizes=st.lists(st.floats(min_value=0.0, max_value=1e3), min_size=120, max_size=120),
    ema_short=st.integers(1, 8),
    bar=st.integers(1, 4),
    period=st.integers(2, 6),
    window=st.integers(2, 30),
)
def test_incremental_features_equal_the_batch_reference(
    mids: list[float],
    spread_bps: float,
    sizes: list[float],
    ema_short: int,
    bar: int,
    period: int,
    window: int,
) -> None:
    p = FeatureParams(
        ema_short_ticks=ema_short,
        ema_long_ticks=ema_short + 5,
        vol_halflife_ticks=7,
        vol_horizon_ticks=1440,
        adx_period=period,
        adx_bar_ticks=bar,
        volume_window_ticks=window,
    )
    state = FeatureState(p)
    mid = np.array(mids)
    half = mid * spread_bps / 2e4
    bid_size = np.array(sizes[: len(mids)])
    ask_size = np.array(sizes[::-1][: len(mids)])
    got = [
        state.update(
            Tick(
                symbol="X",
                ts_ns=i + 1,
                bid=m - h,
                ask=m + h,
                bid_size=float(bs),
                ask_size=float(a),
            )
        )
        for i, (m, h, bs, a) in enumerate(zip(mid, half, bid_size, ask_size, strict=True))
    ]
    mids_got = np.array([f.mid for f in got])
    np.testing.assert_allclose(mids_got, mid, rtol=1e-12)
    np.testing.assert_allclose([f.ema_short for f in got], ema_ref(mids_got, ema_short), rtol=1e-9)
    np.testing.assert_allclose(
        [f.ema_long for f in got], ema_ref(mids_got, ema_short + 5), rtol=1e-9
    )
    r = np.diff(np.log(mids_got))
    lam = 0.5 ** (1 / 7)
    t = np.arange(len(r))
    var = np.tril((1 - lam) * lam ** (t[:, None] - t[None, :]).clip(min=0)) @ (r * r)
    vol = np.concatenate([[0.0], 100 * np.sqrt(var * 1440)])
    np.testing.assert_allclose([f.volatility_pct for f in got], vol, rtol=1e-7, atol=1e-9)
    ret = np.concatenate([[0.0], (mids_got[1:] / mids_got[:-1] - 1) * 1e4])
    np.testing.assert_allclose([f.return_bps for f in got], ret, rtol=1e-9, atol=1e-9)
    adx, pdi, mdi = adx_ref(mids_got, period, bar)
    np.testing.assert_allclose([f.adx for f in got], adx, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose([f.plus_di for f in got], pdi, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose([f.minus_di for f in got], mdi, rtol=1e-7, atol=1e-7)
    volume = bid_size + ask_size
    fast, mean = ema_ref(volume, ema_short), rolling_mean_ref(volume, window)
    ratio = np.where(mean > 0, fast / np.where(mean > 0, mean, 1.0), 1.0)
    np.testing.assert_allclose([f.volume_ratio for f in got], ratio, rtol=1e-7, atol=1e-9)
    depth = bid_size + ask_size
    pressure = np.where(depth > 0, (bid_size - ask_size) / np.where(depth > 0, depth, 1), 0.0)
    np.testing.assert_allclose([f.book_pressure for f in got], pressure, rtol=1e-9, atol=1e-12)
