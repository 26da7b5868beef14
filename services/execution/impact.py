"""The one market-impact model: risk's pre-trade estimate and execution's fill price.

Pure maths, no I/O. Sources: seed 001 §6 (square-root law, coefficient 0.15, daily
volume, participation at most 5 % of it), seed 001 §1 (a slippage estimate with a worst
case and confidence bounds before each order, 20 bps at most), seed 003 §4 (half the
spread; latency penalty (latency_ms / 10) * 0.1 bps). Seed 001 gives the coefficient and
"square-root law" but not the formula; the form below is the usual one (Almgren, Thum,
Hauptmann and Li 2005, "Direct estimation of equity market impact"; Toth et al. 2011):

    participation = q / V_daily                         (fraction of the day's volume)
    impact_bps    = Y * sigma_daily_bps * sqrt(participation)   (Y = ``impact_coeff``)
                    while no day's volume is known (V_daily = 0): seed 003 §4's
                    sqrt(q / D) * 5 bps on the displayed depth D (``impact_fallback_bps``)
    latency_bps   = (latency_ms / 10) * latency_bps_per_10ms    (seed 003 §4: 0.1)
    expected_bps  = half_spread_bps + impact_bps + latency_bps

Uncertainty (seed 001 §1 names the bounds, not how; this is ours): the impact term is
known to within ``impact_sd_pct`` % (one standard deviation), the price moves by
sigma_daily * sqrt(latency_s / 86400) while the order is in flight:

    sd_bps         = sqrt((impact_sd_pct / 100 * impact_bps)^2 + (sigma_daily_bps * sqrt(latency_s / 86400))^2)
    low, high      = expected_bps -/+ confidence_z * sd_bps
    worst_case_bps = expected_bps + worst_case_z * sd_bps

Hand-worked (tests/unit/test_impact.py): sigma_daily 200 bps, 1 % of the day's volume,
Y 0.15 -> impact 0.15 * 200 * 0.1 = 3 bps; half-spread 1, 2 ms -> latency 0.02;
expected 4.02 bps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DAY_S = 86_400.0


def participation(qty: float, daily_volume: float) -> float:
    """q / V_daily (same units for both: shares, coins or USD); inf when no volume."""
    if qty <= 0:
        return 0.0
    return qty / daily_volume if daily_volume > 0 else math.inf


def impact_bps(qty: float, daily_volume: float, sigma_daily_bps: float, coeff: float) -> float:
    """Y * sigma_daily_bps * sqrt(q / V_daily); inf when no volume is known (q > 0)."""
    part = participation(qty, daily_volume)
    if part == 0.0 or coeff <= 0.0 or sigma_daily_bps <= 0.0:
        return 0.0
    return coeff * sigma_daily_bps * math.sqrt(part)


def depth_impact_bps(qty: float, depth: float, fallback_bps: float) -> float:
    """Seed 003 §4: sqrt(q / D) * 5 bps (the default ``fallback_bps``), D = the displayed
    depth taken; inf when nothing is displayed."""
    if qty <= 0 or fallback_bps <= 0:
        return 0.0
    return fallback_bps * math.sqrt(qty / depth) if depth > 0 else math.inf


def impact_of(
    qty: float,
    daily_volume: float,
    sigma_daily_bps: float,
    coeff: float,
    depth: float,
    fallback_bps: float,
) -> float:
    """The rule both services use: seed 001 §6's law on the day's volume, or seed 003
    §4's on the depth while the day's volume is unknown (0)."""
    if daily_volume > 0:
        return impact_bps(qty, daily_volume, sigma_daily_bps, coeff)
    return depth_impact_bps(qty, depth, fallback_bps)


def latency_bps(latency_ms: float, bps_per_10ms: float) -> float:
    """Seed 003 §4: (latency_ms / 10) * 0.1 bps with the default ``bps_per_10ms``."""
    return max(latency_ms, 0.0) / 10.0 * bps_per_10ms


def max_qty_within_bps(
    room_bps: float, daily_volume: float, sigma_daily_bps: float, coeff: float
) -> float:
    """The largest q whose impact stays within ``room_bps``: the inverse of
    ``impact_bps``, q = V_daily * (room_bps / (Y * sigma_daily_bps))^2; inf when impact
    is off; 0 when there is no room."""
    if room_bps < -1e-9:
        return 0.0
    if coeff <= 0.0 or sigma_daily_bps <= 0.0:
        return math.inf
    return max(daily_volume, 0.0) * (max(room_bps, 0.0) / (coeff * sigma_daily_bps)) ** 2


@dataclass(frozen=True, slots=True)
class SlippageEstimate:
    """A pre-trade estimate, bps of notional, positive = cost (seed 001 §1)."""

    participation: float
    half_spread_bps: float
    impact_bps: float
    latency_bps: float
    expected_bps: float
    low_bps: float
    high_bps: float
    worst_case_bps: float


def estimate(
    half_spread_bps: float,
    qty: float,
    daily_volume: float,
    sigma_daily_bps: float,
    coeff: float,
    latency_ms: float,
    latency_bps_per_10ms: float,
    impact_sd_pct: float = 50.0,
    confidence_z: float = 1.645,
    worst_case_z: float = 2.326,
    depth: float = 0.0,
    fallback_bps: float = 0.0,
) -> SlippageEstimate:
    """The module docstring's estimate (impact by ``impact_of``); inf when neither a
    day's volume nor a depth is known."""
    part = participation(qty, daily_volume)
    imp = impact_of(qty, daily_volume, sigma_daily_bps, coeff, depth, fallback_bps)
    lat = latency_bps(latency_ms, latency_bps_per_10ms)
    expected = half_spread_bps + imp + lat
    move_bps = max(sigma_daily_bps, 0.0) * math.sqrt(max(latency_ms, 0.0) / 1e3 / DAY_S)
    sd = math.hypot(impact_sd_pct / 100.0 * imp, move_bps) if math.isfinite(imp) else math.inf
    return SlippageEstimate(
        participation=part,
        half_spread_bps=half_spread_bps,
        impact_bps=imp,
        latency_bps=lat,
        expected_bps=expected,
        low_bps=expected - confidence_z * sd,
        high_bps=expected + confidence_z * sd,
        worst_case_bps=expected + worst_case_z * sd,
    )


class DailyStats:
    """One symbol's daily volume and daily volatility from its quotes, in event time.

    Exponentially weighted over event time with half-life ``half_life_s``; each quote's
    volume and squared log return of the mid belong to the interval since the previous
    quote, dt = min(t_i - t_(i-1), 1 day) (a weekend or a closed night counts as one
    day, so market-calendar bars give per-trading-day figures):

        w_i            = 2^(-(t_now - t_i) / half_life_s)
        V_daily        = sum w_i v_i / sum w_i dt_i * 86400
        sigma_daily^2  = (sum w_i r_i^2 + prior_var_per_s * prior_s)
                         / (sum w_i dt_i + prior_s) * 86400

    ``prior_s`` seconds of the prior daily volatility stand in until data outweighs it, so
    one jump in the first seconds does not read as a day of such jumps. A quote without
    ``volume`` counts its mean touch size as traded (as feature_bus's volume ratio does).
    """

    __slots__ = (
        "half_life_s",
        "prior_var_per_s",
        "prior_s",
        "last_ns",
        "last_mid",
        "w_volume",
        "w_var",
        "w_dt",
    )

    def __init__(self, half_life_s: float, prior_daily_vol_bps: float, prior_s: float) -> None:
        self.configure(half_life_s, prior_daily_vol_bps, prior_s)
        self.last_ns = 0
        self.last_mid = 0.0
        self.w_volume = self.w_var = self.w_dt = 0.0

    def configure(self, half_life_s: float, prior_daily_vol_bps: float, prior_s: float) -> None:
        """New parameters (a reload): the sums seen so far stay; the next quote decays
        them with the new half-life, and the prior counts at its new weight at once."""
        self.half_life_s = half_life_s
        self.prior_var_per_s = (prior_daily_vol_bps / 1e4) ** 2 / DAY_S
        self.prior_s = prior_s

    def add(self, ts_ns: int, mid: float, volume: float) -> None:
        if mid <= 0 or ts_ns <= self.last_ns:
            return
        if self.last_ns:
            gap_s = (ts_ns - self.last_ns) / 1e9
            decay = 0.5 ** (gap_s / self.half_life_s)
            r = math.log(mid / self.last_mid)
            self.w_volume = self.w_volume * decay + max(volume, 0.0)
            self.w_var = self.w_var * decay + r * r
            self.w_dt = self.w_dt * decay + min(gap_s, DAY_S)
        self.last_ns, self.last_mid = ts_ns, mid

    @property
    def daily_volume(self) -> float:
        """V_daily in the quotes' units; 0 until two quotes have been seen."""
        return self.w_volume / self.w_dt * DAY_S if self.w_dt > 0 else 0.0

    @property
    def sigma_daily_bps(self) -> float:
        var_per_s = (self.w_var + self.prior_var_per_s * self.prior_s) / (self.w_dt + self.prior_s)
        return math.sqrt(var_per_s * DAY_S) * 1e4
