"""TREND, RANGE (mean reversion) and BREAKOUT engines, so consensus has diverse voters.

Issue 4 names the three engines of seed 002; the seed text is not available, so the
formulas below are this module's own, stated here with their units:

- TREND: ``trend_bps = 1e4 * (ema_short / ema_long - 1)``;
  ``edge_bps = clip(0.5 * trend_bps, +-30)``; confidence from ADX when the feature bus
  provides it (``min(1, adx / 50)``, silent below ``adx < 20``: no trend), otherwise
  ``min(1, |trend_bps| / 20)``.
- RANGE: fade the distance to the slow mean in units of volatility:
  ``z = 1e4 * (mid / ema_long - 1) / vol_bps`` with ``vol_bps = 100 * volatility_pct``;
  ``edge_bps = -5 * clip(z, +-3)`` (at most 15 bps), ``confidence = min(1, |z| / 3)``;
  waiting while the volatility is unknown (0).
- BREAKOUT: a Donchian channel of the previous ``window`` mids per symbol; a mid above
  the channel's high (below its low) votes long (short) with
  ``edge_bps = sign * min(30, 10 + distance_bps)`` and
  ``confidence = min(1, 0.5 * volume_ratio)``; inside the channel, or before the window
  is full, it is waiting (the router keeps its last vote, decaying with age). The
  channel's high and low are kept by monotonic queues, O(1) amortised per mid instead
  of a max and a min over the window at every message (the same values, exactly).
"""

from __future__ import annotations

from collections import deque

from services.model_router.models import ModelBase, Prediction
from shared.messages import Features


def _clip(x: float, bound: float) -> float:
    return max(-bound, min(bound, x))


class TrendEngine(ModelBase):
    id = "trend"
    description = "follows the EMA trend, confidence from ADX (seed 002 TREND engine)"
    regimes = frozenset({"TREND"})

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        if f.ema_long <= 0:
            return None
        trend_bps = (f.ema_short / f.ema_long - 1.0) * 1e4
        adx = float(getattr(f, "adx", 0.0) or 0.0)
        if adx > 0:
            if adx < 20.0:
                return 0.0, 0.0  # no trend to follow
            confidence = min(1.0, adx / 50.0)
        else:
            confidence = min(1.0, abs(trend_bps) / 20.0)
        return _clip(0.5 * trend_bps, 30.0), confidence


class RangeEngine(ModelBase):
    id = "range"
    description = "mean reversion to the slow EMA in volatility units (seed 002 RANGE engine)"
    regimes = frozenset({"RANGE"})

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        vol_bps = f.volatility_pct * 100.0
        if vol_bps <= 0 or f.ema_long <= 0:
            return None
        z = (f.mid / f.ema_long - 1.0) * 1e4 / vol_bps
        return -5.0 * _clip(z, 3.0), min(1.0, abs(z) / 3.0)


class DonchianChannel:
    """High and low of the last ``window`` mids of one symbol, O(1) amortised per mid.

    Monotonic queues of (index, mid), oldest first: ``highs`` keeps only the mids that
    no later mid equals or exceeds (so its front is the window's max), ``lows`` the
    mirror; a front that left the window is dropped. The values are the mids
    themselves, so ``high``/``low`` equal ``max``/``min`` over the window exactly.
    """

    __slots__ = ("window", "count", "highs", "lows")

    def __init__(self, window: int) -> None:
        self.window = window
        self.count = 0  # mids pushed so far
        self.highs: deque[tuple[int, float]] = deque()
        self.lows: deque[tuple[int, float]] = deque()

    @property
    def full(self) -> bool:
        return self.count >= self.window

    @property
    def high(self) -> float:
        return self.highs[0][1]

    @property
    def low(self) -> float:
        return self.lows[0][1]

    def push(self, mid: float) -> None:
        i = self.count
        highs, lows = self.highs, self.lows
        while highs and highs[-1][1] <= mid:
            highs.pop()
        highs.append((i, mid))
        while lows and lows[-1][1] >= mid:
            lows.pop()
        lows.append((i, mid))
        # The window is now indices i - window + 1 .. i: at most one front fell out.
        if highs[0][0] <= i - self.window:
            highs.popleft()
        if lows[0][0] <= i - self.window:
            lows.popleft()
        self.count = i + 1


class BreakoutEngine(ModelBase):
    id = "breakout"
    description = "Donchian channel breakout, confidence from volume (seed 002 BREAKOUT engine)"
    regimes = frozenset({"TREND", "RANGE"})

    def __init__(self, window: int = 50) -> None:
        self.window = window
        self._mids: dict[str, DonchianChannel] = {}  # symbol -> its previous mids
        self._channel: dict[str, tuple[float, float]] = {}  # symbol -> (high, low) before now

    def observe(self, f: Features) -> None:
        mids = self._mids.get(f.symbol)
        if mids is None:
            mids = self._mids[f.symbol] = DonchianChannel(self.window)
        if mids.count >= self.window:
            self._channel[f.symbol] = (mids.highs[0][1], mids.lows[0][1])
        mids.push(f.mid)

    def predict(self, f: Features, horizon: str) -> Prediction | None:
        channel = self._channel.get(f.symbol)
        if channel is None:
            return None  # window not full yet
        high, low = channel
        confidence = min(1.0, 0.5 * float(getattr(f, "volume_ratio", 1.0) or 1.0))
        if f.mid > high:
            return min(30.0, 10.0 + (f.mid / high - 1.0) * 1e4), confidence
        if f.mid < low:
            return -min(30.0, 10.0 + (1.0 - f.mid / low) * 1e4), confidence
        return None
