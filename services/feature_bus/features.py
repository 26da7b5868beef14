"""Per-symbol features of clean quotes: pure, O(1) per tick, no I/O.

Formulas (seed 003 §2 as quoted in issue 3; units in the names):
- mid = (bid + ask) / 2; spread_bps = (ask - bid) / mid * 1e4
- book_pressure = (bid_size - ask_size) / (bid_size + ask_size), in [-1, 1] (0 if empty)
- Windows are durations of event time (``ts_ns``), not numbers of quotes; dt is the
  time since the symbol's previous quote (indicators.py gives each formula).
- ema_short / ema_long: time-decayed EMAs of mid of span ``ema_short_s`` /
  ``ema_long_s`` (tau = span / 2); trend_bps = (ema_short / ema_long - 1) * 1e4
- return_bps = (mid_t / mid_{t-1} - 1) * 1e4 (0 on the first tick)
- volatility_pct = 100 * sqrt(v * 86,400): daily volatility in percent, v the EWMA
  variance per second of r = ln(mid_t / mid_{t-1}) over the elapsed event time
  (half-life ``vol_halflife_s``). Quotes every second and daily bars both read daily
  volatility (for bars with closed days, per calendar day: a weekend's return is
  spread over its three days).
- adx, plus_di, minus_di: Wilder's ADX(``adx_period``): on a bar's own high, low and
  close (close = mid) when the tick is a bar, else on time bars of ``adx_bar_s`` of
  mids.
- volume_ratio = EMA(volume, span ``ema_short_s``) / mean(volume over the last
  ``volume_window_s`` seconds); volume is the quote's traded ``volume`` when the
  source gives one, else its displayed depth bid_size + ask_size (book tickers have no
  trade volume). 1.0 while the mean is 0.
- regime: see ``classify``.
- prints (docs/feature_bus.md "Prints"; None until the symbol's source gives a print,
  then updated on every tick, a tick without a print counting as no trade): with
  ``w = exp(-dt / flow_window_s)``,
  flow_imbalance = F / V, F <- w F + side * trade_qty, V <- w V + trade_qty (in [-1, 1],
  0 while V = 0): the time-decayed signed volume over the decayed volume;
  trade_rate_per_s = N / T, N <- w N + trade_count, T <- w T + dt_s (0 while T = 0):
  trades per second of event time, decayed like VarianceRate;
  sweep_bps = 1e4 * side * trade_qty / depth_hit * exp(-age / sweep_window_s) of the
  last sweep (a print larger than the displayed depth of the side it hit, the ask for
  a buyer, the bid for a seller; the multiple qty / depth_hit capped at 10, an empty
  side counting as 10),
  age the event time since it; 0 before any sweep. A print of 1.5 x the ask depth
  reads +15,000 at once, half that after ``sweep_window_s * ln 2``. These feed no
  other feature, the regime or ``features_hash``.
- features_hash: blake2b-64 over the feature values (``hash_values``) rounded to 10
  significant digits, so equal features hash equally on every machine.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from typing import Any

import orjson

from services.feature_bus.config import FeatureParams
from services.feature_bus.indicators import (
    NS_PER_S,
    Adx,
    DecayedMean,
    VarianceRate,
    WindowMean,
)
from shared.messages import SCHEMA_VERSION, Features, Regime, Tick, id_checker

SECONDS_PER_DAY = 86_400.0
MAX_SWEEP_RATIO = 10.0  # sweep_bps reads at most 1e5: ten times the depth taken


def features_hash(values: tuple[float, ...]) -> str:
    """blake2b-64 over the feature values rounded to 10 significant digits."""
    packed = struct.pack(f"{len(values)}d", *rounded_10g(values))
    h = _BLAKE2B_64.copy()  # cheaper than a new hash object with its keyword arguments
    h.update(packed)
    return h.hexdigest()


_BLAKE2B_64 = hashlib.blake2b(digest_size=8)


def rounded_10g(values: tuple[float, ...]) -> list[float]:
    """``[float(f"{v:.10g}") for v in values]`` in two C calls: one %-format of all the
    values as a JSON array (``%.10g`` is ``format(v, ".10g")``), one orjson parse
    (correctly rounded, like float(); tests compare millions). Not for "-0", which JSON
    reads as the integer 0 (+0.0), nor for "inf" and "nan", which are not JSON: those
    take the per-value path."""
    try:
        text = _format_10g(len(values)) % tuple(values)
        if "-0," not in text and "-0]" not in text:
            return orjson.loads(text)  # type: ignore[no-any-return]
    except (TypeError, orjson.JSONDecodeError):  # not numbers; "inf", "nan"
        pass
    return [float(f"{v:.10g}") for v in values]


@functools.cache
def _format_10g(n: int) -> str:
    return "[" + ",".join(["%.10g"] * n) + "]"


def classify(
    *,
    adx: float,
    plus_di: float,
    minus_di: float,
    trend_bps: float,
    volatility_pct: float,
    volume_ratio: float,
    spread_bps: float,
    previous: Regime,
    p: FeatureParams,
) -> Regime:
    """Regime of seed 003 §2 (as quoted in issue 3), first rule that matches:

    1. ILLIQUID: volume_ratio < illiquid_volume_ratio (30 % of normal) or
       spread_bps > illiquid_spread_bps (50).
    2. PANIC: volatility_pct > panic_vol_pct (5) and trend_bps < 0 and
       volume_ratio > panic_volume_ratio (1.5, "high volume").
    3. TREND: adx > trend_adx_min (25) and directional: the EMA gap points the way of
       the dominant DI (+DI > -DI with trend_bps > 0, or -DI > +DI with trend_bps < 0).
    4. RANGE: adx < range_adx_max (20) and range_vol_min_pct <= volatility_pct <=
       range_vol_max_pct (1-4 %).
    5. none of these: ``previous`` (hysteresis, e.g. ADX between 20 and 25).
    """
    if volume_ratio < p.illiquid_volume_ratio or spread_bps > p.illiquid_spread_bps:
        return "ILLIQUID"
    if volatility_pct > p.panic_vol_pct and trend_bps < 0 and volume_ratio > p.panic_volume_ratio:
        return "PANIC"
    directional = (plus_di > minus_di and trend_bps > 0) or (minus_di > plus_di and trend_bps < 0)
    if adx > p.trend_adx_min and directional:
        return "TREND"
    if adx < p.range_adx_max and p.range_vol_min_pct <= volatility_pct <= p.range_vol_max_pct:
        return "RANGE"
    return previous


class FeatureState:
    """Running features of one symbol; ``update`` costs O(1) per tick."""

    __slots__ = (
        "p",
        "ema_short",
        "ema_long",
        "var",
        "adx",
        "vol_fast",
        "vol_mean",
        "prev_mid",
        "prev_ts_ns",
        "regime",
        "last_tick",
        "n",
        "k_short",
        "k_long",
        "k_var",
        "dt_ns",
        "w_short",
        "w_long",
        "w_var",
        "has_prints",
        "flow_signed",
        "flow_total",
        "trades_n",
        "trades_s",
        "k_flow",
        "k_sweep",
        "sweep_ratio",
        "sweep_ts_ns",
    )

    def __init__(self, p: FeatureParams) -> None:
        self.p = p
        self.ema_short = DecayedMean()
        self.ema_long = DecayedMean()
        self.var = VarianceRate()
        self.adx = Adx(p.adx_period, p.adx_bar_s)
        self.vol_fast = DecayedMean()
        self.vol_mean = WindowMean(p.volume_window_s)
        self.prev_mid = 0.0
        self.prev_ts_ns = 0
        self.regime: Regime = "RANGE"
        self.last_tick: Tick | None = None
        self.n = 0
        # Decay per nanosecond: w = exp(-dt_ns * k); EMA tau = span / 2, volatility
        # tau = half-life / ln 2.
        self.k_short = 2.0 / (p.ema_short_s * NS_PER_S)
        self.k_long = 2.0 / (p.ema_long_s * NS_PER_S)
        self.k_var = math.log(2.0) / (p.vol_halflife_s * NS_PER_S)
        # The decays of the last dt, reused while quotes keep their spacing.
        self.dt_ns = -1
        self.w_short = self.w_long = self.w_var = 0.0
        # Prints: decayed signed and total volume, trade count and elapsed seconds; the
        # last sweep (signed multiple of the depth it took) and its event time.
        self.has_prints = False
        self.flow_signed = self.flow_total = self.trades_n = self.trades_s = 0.0
        self.k_flow = 1.0 / (p.flow_window_s * NS_PER_S)
        self.k_sweep = 1.0 / (p.sweep_window_s * NS_PER_S)
        self.sweep_ratio = 0.0
        self.sweep_ts_ns = 0

    def update(self, tick: Tick, quality: str = "", source: str = "") -> Features:
        p = self.p
        mid = (tick.bid + tick.ask) / 2.0
        spread_bps = (tick.ask - tick.bid) / mid * 1e4
        depth = tick.bid_size + tick.ask_size
        pressure = (tick.bid_size - tick.ask_size) / depth if depth > 0 else 0.0
        ts_ns = tick.ts_ns
        dt_ns = ts_ns - self.prev_ts_ns if self.n else 0
        if dt_ns < 0:  # the gate refuses these; a direct caller gets no negative age
            dt_ns = 0
        if dt_ns != self.dt_ns:
            exp = math.exp
            self.dt_ns = dt_ns
            self.w_short = exp(-dt_ns * self.k_short)
            self.w_long = exp(-dt_ns * self.k_long)
            self.w_var = exp(-dt_ns * self.k_var)
        w_short = self.w_short
        ema_s = self.ema_short.update(mid, w_short)
        ema_l = self.ema_long.update(mid, self.w_long)
        if self.n == 0:
            ret_bps = 0.0
        else:
            ret_bps = (mid / self.prev_mid - 1.0) * 1e4
            self.var.update(math.log(mid / self.prev_mid), dt_ns / NS_PER_S, self.w_var)
        self.prev_mid = mid
        self.prev_ts_ns = ts_ns
        self.last_tick = tick
        self.n += 1
        vol_pct = 100.0 * math.sqrt(self.var.value * SECONDS_PER_DAY)
        high = tick.high
        if high is None:
            adx = self.adx.update(ts_ns, mid)
        else:  # a bar: its own high and low (the mid is its close)
            low = tick.low
            adx = self.adx.bar(high, low if low is not None else mid, mid)
        volume = tick.volume if tick.volume is not None else depth
        fast = self.vol_fast.update(volume, w_short)
        mean = self.vol_mean.update(ts_ns, volume)
        volume_ratio = fast / mean if mean > 0 else 1.0
        trend_bps = (ema_s / ema_l - 1.0) * 1e4
        self.regime = classify(
            adx=adx,
            plus_di=self.adx.plus_di,
            minus_di=self.adx.minus_di,
            trend_bps=trend_bps,
            volatility_pct=vol_pct,
            volume_ratio=volume_ratio,
            spread_bps=spread_bps,
            previous=self.regime,
            p=p,
        )
        values = (
            mid,
            spread_bps,
            pressure,
            ema_s,
            ema_l,
            ret_bps,
            vol_pct,
            adx,
            volume_ratio,
            trend_bps,
        )
        plus_di, minus_di = self.adx.plus_di, self.adx.minus_di
        flow: float | None = None
        rate: float | None = None
        sweep: float | None = None
        if self.has_prints or tick.trade_qty is not None:
            flow, rate, sweep = self._flow(tick, dt_ns)
        fields: dict[str, Any] = {  # in Features' order (see Message.trusted)
            "v": SCHEMA_VERSION,
            "trace_ts_ns": tick.trace_ts_ns,
            "symbol": tick.symbol,
            "ts_ns": tick.ts_ns,
            "mid": mid,
            "spread_bps": spread_bps,
            "regime": self.regime,
            "features_hash": features_hash(values),
            "bid": tick.bid,
            "ask": tick.ask,
            "bid_size": tick.bid_size,
            "ask_size": tick.ask_size,
            "book_pressure": pressure,
            "ema_short": ema_s,
            "ema_long": ema_l,
            "return_bps": ret_bps,
            "volatility_pct": vol_pct,
            "adx": adx,
            "volume_ratio": volume_ratio,
            "trend_bps": trend_bps,
            "plus_di": plus_di,
            "minus_di": minus_di,
            "source": source,
            "quality": quality,
        }
        if flow is not None:  # the last fields; without prints they keep their default
            fields["flow_imbalance"] = flow
            fields["trade_rate_per_s"] = rate
            fields["sweep_bps"] = sweep
        # Validation would only confirm what holds here: every value computed above is a
        # float, finite for finite inputs; the checks below cover what the inputs could
        # break (a huge or non-finite value, an int from an unvalidated tick).
        if (
            mid > 0.0
            and type(tick.bid) is type(tick.ask) is float
            and type(tick.bid_size) is type(tick.ask_size) is float
            # One NaN or infinity makes the sum non-finite (so may an overflow: that
            # only costs the validation).
            and math.isfinite(sum(values) + plus_di + minus_di + tick.bid + tick.ask + depth)
            and type(source) is str
            and type(quality) is str
            and valid_ids(tick.trace_ts_ns, tick.symbol, tick.ts_ns)
            and (flow is None or math.isfinite(flow + rate + sweep))  # type: ignore[operator]
        ):
            return Features.trusted(fields)
        return Features(**fields)

    def _flow(self, tick: Tick, dt_ns: int) -> tuple[float, float, float]:
        """(flow_imbalance, trade_rate_per_s, sweep_bps) after this tick's print (module
        docstring); a tick without one is a quiet interval."""
        self.has_prints = True
        qty = tick.trade_qty or 0.0
        side = tick.trade_side or 0
        w = math.exp(-dt_ns * self.k_flow)
        signed = self.flow_signed = w * self.flow_signed + side * qty
        total = self.flow_total = w * self.flow_total + qty
        n = self.trades_n = w * self.trades_n + (tick.trade_count or 0)
        elapsed = self.trades_s = w * self.trades_s + dt_ns / NS_PER_S
        flow = max(-1.0, min(1.0, signed / total)) if total > 0.0 else 0.0
        rate = n / elapsed if elapsed > 0.0 else 0.0
        if side and qty > 0.0:
            hit = tick.ask_size if side > 0 else tick.bid_size
            if qty > hit:
                # Capped: a near-empty side would give a ratio of millions.
                self.sweep_ratio = side * (
                    min(MAX_SWEEP_RATIO, qty / hit) if hit > 0.0 else MAX_SWEEP_RATIO
                )
                self.sweep_ts_ns = tick.ts_ns
        if self.sweep_ratio == 0.0:
            return flow, rate, 0.0
        age_ns = max(0, tick.ts_ns - self.sweep_ts_ns)
        return flow, rate, 1e4 * self.sweep_ratio * math.exp(-age_ns * self.k_sweep)


# What validation checks of the fields every Tick and Features carry, derived from the
# models (a changed limit cannot drift from a hand copy).
valid_ids = id_checker(Tick, Features)
