"""Position limits and pre-trade checks: every limit is an interval of allowed
positions t (USD) for the name being sized, the others held fixed; the target is the
desired position clipped into their intersection, so no size ever breaks a cap.

Limits (seed 003 §5 and its presets; the numbers and their sources are in
docs/risk_harmoniser.md "Limits"), with E = equity, x = current position (filled plus
working), others = every other name:
- name cap:        |t| <= name_cap_pct(class) / 100 * E                 (single coin cap)
- leverage:        |t| + gross(others of the class) <= leverage(class) * E
- sector cap:      |t| + gross(others of the sector) <= sector_cap_pct / 100 * E
- gross cap:       |t| + gross(others) <= gross_cap_pct / 100 * E     (every class; the
                   schema keeps each leverage(class) <= gross_cap_pct / 100, else the
                   gross cap would always bind first)
- open risk:       s_i*|t| + sum(s_j*|w_j|) <= daily loss budget left (USD): the
                   seed's "sum of stops <= daily loss stop", s_j = each name's stop
                   distance (exits.py, a fraction); with exits off, the 1-day 95 %
                   move z*sigma_j stands in for it
- single trade:    the new exposure a trade opens (|t| - |x| on the same side, |t| when
                   it flips) <= single_trade_risk_pct / 100 * E / (z * sigma)
- max order:       |t - x| <= max_order_usd (pre-trade)
- portfolio VaR:   z * sqrt(w^T C w) <= var_limit_pct / 100 * E (var.var_interval)
- REDUCING:        t between 0 and x (never more exposure)

Pre-trade checks (seed 000 §3, seed 001 §1) return a reason code or "".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from operator import itemgetter

from services.risk_harmoniser.var import Matrix, portfolio_var_usd, var_interval


@dataclass(slots=True)  # not frozen: built per signal, and frozen costs 3x to construct
class Book:
    """The portfolio as sizing sees it; tuples index-aligned by name."""

    positions_usd: tuple[float, ...]  # filled + working, signed
    asset_class: tuple[str, ...]
    sector: tuple[str, ...]
    cov_daily: Matrix  # 1-day covariance of returns (fractions^2)
    equity_usd: float
    loss_budget_usd: float  # daily loss stop left today
    # Each name's stop distance as a fraction of its price (exits.py); () with exits
    # off: the 1-day 95 % move stands in for it.
    stop_frac: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Caps:
    """Plain-float limits for one name (resolved from LimitParams per asset class)."""

    name_cap_pct: float
    leverage: float
    sector_cap_pct: float
    gross_cap_pct: float
    single_trade_risk_pct: float
    var_limit_pct: float
    var_z: float
    max_order_usd: float


Interval = tuple[str, float, float]  # (reason code, lowest, highest allowed position)
_LO, _HI = itemgetter(1), itemgetter(2)


def limit_intervals(i: int, book: Book, caps: Caps, reducing: bool) -> list[Interval]:
    """Every limit of the module docstring as the interval of positions of name i it
    allows (the others held fixed), in the docstring's order, each named by the reason
    code it gives when it binds."""
    w = book.positions_usd
    eq = book.equity_usd
    x = w[i]
    z = caps.var_z
    cls, sec = book.asset_class[i], book.sector[i]
    classes, sectors, cov = book.asset_class, book.sector, book.cov_daily
    gross_cls = gross_sec = gross_all = risk_others = 0.0
    stops = book.stop_frac
    for j, wj in enumerate(w):
        if j == i or wj == 0.0:
            continue
        a = abs(wj)
        gross_all += a
        if classes[j] == cls:
            gross_cls += a
        if sectors[j] == sec:
            gross_sec += a
        if stops:
            risk_others += stops[j] * a
        else:
            v = cov[j][j]
            if v > 0.0:
                risk_others += z * math.sqrt(v) * a
    v = cov[i][i]
    z_sigma = z * math.sqrt(v) if v > 0.0 else 0.0
    stop_i = stops[i] if stops else z_sigma

    # |t| <= cap, each cap >= 0
    name = max(0.0, caps.name_cap_pct / 100.0 * eq)
    leverage = max(0.0, caps.leverage * eq - gross_cls)
    sector = max(0.0, caps.sector_cap_pct / 100.0 * eq - gross_sec)
    gross = max(0.0, caps.gross_cap_pct / 100.0 * eq - gross_all)
    risk = (book.loss_budget_usd - risk_others) / stop_i if stop_i > 0.0 else math.inf
    risk = max(0.0, risk)
    # single trade risk: the new exposure a trade opens
    opening = caps.single_trade_risk_pct / 100.0 * eq / z_sigma if z_sigma > 0.0 else math.inf
    trade_lo, trade_hi = (-opening, x + opening) if x >= 0 else (x - opening, opening)
    var_lo, var_hi = var_interval(i, w, cov, z, caps.var_limit_pct / 100.0 * eq)
    intervals = [
        ("name_cap", -name, name),
        ("leverage", -leverage, leverage),
        ("sector_cap", -sector, sector),
        ("gross_cap", -gross, gross),
        ("open_risk", -risk, risk),
        ("single_trade_risk", trade_lo, trade_hi),
        ("max_order", x - caps.max_order_usd, x + caps.max_order_usd),
        ("var_limit", var_lo, var_hi),
    ]
    if reducing:
        intervals.append(("reducing_only", min(0.0, x), max(0.0, x)))
    return intervals


def constrain(
    i: int, desired_usd: float, book: Book, caps: Caps, reducing: bool
) -> tuple[float, str]:
    """(target_usd, binding reason or "") : ``desired_usd`` clipped into the intersection
    of ``limit_intervals``; the binding limit is the first whose bound the target equals.

    When no position meets every limit (the book already breaks one, e.g. after a loss
    shrank equity), move toward zero by at most max_order_usd if that neither raises
    portfolio VaR above max(limit, now) nor goes past zero; else keep x."""
    intervals = limit_intervals(i, book, caps, reducing)
    lo = max(map(_LO, intervals))
    hi = min(map(_HI, intervals))
    x = book.positions_usd[i]
    if lo <= hi:
        target = min(hi, max(lo, desired_usd))
        if target == desired_usd:
            return target, ""
        for reason, p_lo, p_hi in intervals:
            if target in (p_lo, p_hi):
                return target, reason
        return target, "limits"
    if x == 0.0 or desired_usd * x > 0 and abs(desired_usd) >= abs(x):
        return x, "no_feasible_size"
    step = min(abs(x), caps.max_order_usd)
    target = x - math.copysign(step, x)
    w_after = list(book.positions_usd)
    w_after[i] = target
    limit_usd = caps.var_limit_pct / 100.0 * book.equity_usd
    var_now = portfolio_var_usd(book.positions_usd, book.cov_daily, caps.var_z)
    if portfolio_var_usd(w_after, book.cov_daily, caps.var_z) > max(limit_usd, var_now):
        return x, "no_feasible_size"
    return target, "reduce_to_limits"


class OrderRate:
    """At most ``max_per_s`` orders in any 1 s window (all names) and one order per
    name every ``cooldown_ms`` (seed 000 §3 order-rate check). Event time in ns."""

    def __init__(self) -> None:
        self.sent: deque[int] = deque()
        self.last_by_symbol: dict[str, int] = {}

    def check(self, symbol: str, now_ns: int, max_per_s: float, cooldown_ms: float) -> str:
        while self.sent and now_ns - self.sent[0] >= 1_000_000_000:
            self.sent.popleft()
        if len(self.sent) >= max_per_s:
            return "order_rate"
        last = self.last_by_symbol.get(symbol)
        if last is not None and (now_ns - last) / 1e6 < cooldown_ms:
            return "symbol_cooldown"
        return ""

    def record(self, symbol: str, now_ns: int) -> None:
        self.sent.append(now_ns)
        self.last_by_symbol[symbol] = now_ns


def quote_check(
    quote_ts_ns: int,
    mark: float,
    signal_mid: float | None,
    now_ns: int,
    max_quote_age_ms: float,
    price_band_bps: float,
) -> str:
    """Quote age and price band (seed 000 §3): "" when fine, else the reason code."""
    if mark <= 0.0 or quote_ts_ns <= 0:
        return "no_quote"
    if (now_ns - quote_ts_ns) / 1e6 > max_quote_age_ms:
        return "stale_quote"
    if signal_mid is not None and abs(signal_mid - mark) / mark * 1e4 > price_band_bps:
        return "price_band"
    return ""
