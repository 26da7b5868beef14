"""Backtest report metrics: pure functions over equity curves, fills and trades.

Source: seed 003 "Backtest Reports" (net and gross Sharpe, Sortino, Calmar; hit rate,
avg win, avg loss, profit factor; max/avg drawdown, time to recover; turnover, trades per
day, avg holding time; slippage, fee and funding share of gross alpha; capacity; stability
across years and coins as mean, std, min, max, median) and seed 001 §6 (square-root impact).
Every formula, unit and convention is also in docs/backtest_report.md.

Conventions: returns are simple daily returns by UTC day in event time; annualisation
multiplies by sqrt(P) (Sharpe) or P (mean return), P = ``periods_per_year`` (252 by
default, as empyrical; pass 365 for a 24/7 market); the risk-free rate is 0; "years" of a
run are n_days / P, so annual return and turnover per year use the same clock.
No I/O here: report.py reads the CSVs and hands these functions plain arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from services.backtest.numbers import NAN as NAN
from services.backtest.numbers import NS_PER_DAY as NS_PER_DAY
from services.backtest.numbers import NS_PER_S as NS_PER_S
from services.backtest.numbers import safe_ratio as _safe_ratio

DEFAULT_PERIODS_PER_YEAR = 252


# --- equity curve -> daily returns ----------------------------------------------------


def utc_day(ts_ns: np.ndarray) -> np.ndarray:
    """Integer UTC day number (days since 1970-01-01) of each event time in ns."""
    return np.floor_divide(np.asarray(ts_ns, dtype=np.int64), NS_PER_DAY)


def day_year_month(day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(calendar year, month 1..12) of UTC day numbers."""
    d = np.asarray(day, dtype=np.int64).astype("datetime64[D]")
    months = d.astype("datetime64[M]").astype(np.int64)
    return months // 12 + 1970, months % 12 + 1


def daily_equity_closes(ts_ns: np.ndarray, equity_usd: np.ndarray) -> np.ndarray:
    """Last equity_usd marked on each UTC day (event time), first to last day of the curve.

    A calendar day with no mark keeps the previous close (a 24/7 market, or a quiet day).
    """
    return _daily(ts_ns, equity_usd)[2]


def _daily(ts_ns: np.ndarray, equity_usd: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    ts = np.asarray(ts_ns, dtype=np.int64)
    eq = np.asarray(equity_usd, dtype=float)
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64), NAN, np.zeros(0)
    order = np.argsort(ts, kind="stable")
    ts, eq = ts[order], eq[order]
    days = utc_day(ts)
    all_days = np.arange(days[0], days[-1] + 1)
    # index of the last mark on or before each calendar day (forward fill)
    last_idx = np.searchsorted(days, all_days, side="right") - 1
    return all_days, float(eq[0]), eq[last_idx]


def daily_returns(ts_ns: np.ndarray, equity_usd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UTC day numbers, simple daily returns) of an equity curve.

    r_d = close_d / close_{d-1} - 1 with close_d = ``daily_equity_closes``, and
    close_{first-1} = the first mark of the curve (the opening equity), so a one-day run
    has one return and no day's PnL is lost.
    """
    days, opening, closes = _daily(ts_ns, equity_usd)
    if days.size == 0:
        return days, closes
    prev = np.concatenate(([opening], closes[:-1]))
    return days, closes / prev - 1.0


def curve_from_returns(returns: np.ndarray, start: float = 1.0) -> np.ndarray:
    """Equity curve start * cumprod(1 + r), with the starting value prepended."""
    r = np.asarray(returns, dtype=float)
    return start * np.concatenate(([1.0], np.cumprod(1.0 + r)))


def gross_equity_usd(
    mark_ts_ns: np.ndarray,
    equity_usd: np.ndarray,
    cost_ts_ns: np.ndarray,
    cost_usd: np.ndarray,
) -> np.ndarray:
    """Equity before costs: E_gross(t) = E(t) + sum of cost_usd with cost_ts_ns <= t.

    cost_usd per fill = fee + slippage + funding (see ``fill_costs_usd``); adding the costs
    back gives the curve of trading at the decision price with no fees (gross alpha).
    """
    ct = np.asarray(cost_ts_ns, dtype=np.int64)
    order = np.argsort(ct, kind="stable")
    cum = np.concatenate(([0.0], np.cumsum(np.asarray(cost_usd, dtype=float)[order])))
    idx = np.searchsorted(ct[order], np.asarray(mark_ts_ns, dtype=np.int64), side="right")
    return np.asarray(equity_usd, dtype=float) + cum[idx]


# --- return-based ratios --------------------------------------------------------------


def sharpe_ratio(returns: np.ndarray, periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> float:
    """Annualised Sharpe = mean(r) / std(r, ddof=1) * sqrt(P); risk-free rate 0.

    Sharpe (1994); the same as empyrical.sharpe_ratio(r, annualization=P). NaN for fewer
    than two returns; +-inf when the returns are constant and non-zero.
    """
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return NAN
    return _safe_ratio(float(np.mean(r)), float(np.std(r, ddof=1))) * math.sqrt(periods_per_year)


def downside_deviation(
    returns: np.ndarray,
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
    required_return: float = 0.0,
) -> float:
    """Annualised downside deviation = sqrt(mean(min(r - T, 0)^2)) * sqrt(P).

    The mean runs over ALL periods (an up period counts as 0), as empyrical.downside_risk
    and Sortino & Price (1994); not the std of the negative returns only.
    """
    r = np.asarray(returns, dtype=float)
    if r.size == 0:
        return NAN
    down = np.minimum(r - required_return, 0.0)
    return float(np.sqrt(np.mean(down**2))) * math.sqrt(periods_per_year)


def sortino_ratio(
    returns: np.ndarray,
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
    required_return: float = 0.0,
) -> float:
    """Sortino = mean(r - T) * P / downside_deviation(r, P, T); target T = 0 by default.

    As empyrical.sortino_ratio(r, required_return=T, annualization=P). NaN for fewer
    than two returns; +inf when no period falls below T and the mean is positive.
    """
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return NAN
    mean_annual = float(np.mean(r - required_return)) * periods_per_year
    return _safe_ratio(mean_annual, downside_deviation(r, periods_per_year, required_return))


def annual_return(returns: np.ndarray, periods_per_year: float = DEFAULT_PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate = prod(1 + r) ** (P / n) - 1 (fraction; 0.1 = 10 %/yr).

    As empyrical.annual_return: the run lasts n / P years.
    """
    r = np.asarray(returns, dtype=float)
    if r.size == 0:
        return NAN
    growth = float(np.prod(1.0 + r))
    return growth ** (periods_per_year / r.size) - 1.0 if growth > 0 else -1.0


def calmar_ratio(annual_return_frac: float, max_drawdown_frac: float) -> float:
    """Calmar = annual return / max drawdown (both fractions); NaN without a drawdown.

    Young (1991). empyrical.calmar_ratio(r) equals
    calmar_ratio(annual_return(r), max_drawdown_frac(curve_from_returns(r))).
    """
    if not max_drawdown_frac > 0 or not math.isfinite(annual_return_frac):
        return NAN
    return annual_return_frac / max_drawdown_frac


# --- drawdowns --------------------------------------------------------------------------


def drawdown_frac(equity_usd: np.ndarray) -> np.ndarray:
    """Drawdown below the running peak: dd_t = 1 - E_t / max_{s<=t} E_s (>= 0; 0.1 = 10 %)."""
    eq = np.asarray(equity_usd, dtype=float)
    if eq.size == 0:
        return eq
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - eq / peak, 0.0)
    return np.maximum(dd, 0.0)


def max_drawdown_frac(equity_usd: np.ndarray) -> float:
    """Max drawdown = max_t dd_t (fraction, >= 0); empyrical's max_drawdown is its negative."""
    dd = drawdown_frac(equity_usd)
    return float(dd.max()) if dd.size else NAN


@dataclass(frozen=True)
class DrawdownEpisode:
    """From a peak (last mark at the running high) until equity regains it (or the end)."""

    peak_ts_ns: int
    trough_ts_ns: int
    end_ts_ns: int  # the mark that regains the peak, or the last mark if still open
    depth_frac: float
    recovered: bool


def drawdown_episodes(ts_ns: np.ndarray, equity_usd: np.ndarray) -> list[DrawdownEpisode]:
    """Drawdown episodes of a curve in time order (marks assumed sorted by ts_ns).

    An episode starts at the last mark with E = running peak before E falls below it, and
    ends at the first later mark with E >= that peak; one still open ends at the last mark.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    dd = drawdown_frac(equity_usd)
    episodes: list[DrawdownEpisode] = []
    i, n = 0, dd.size
    while i < n:
        if dd[i] <= 0:
            i += 1
            continue
        start = i - 1 if i > 0 else 0
        j = i
        while j < n and dd[j] > 0:
            j += 1
        trough = i + int(np.argmax(dd[i:j]))
        recovered = j < n
        end = j if recovered else n - 1
        episodes.append(
            DrawdownEpisode(
                int(ts[start]), int(ts[trough]), int(ts[end]), float(dd[trough]), recovered
            )
        )
        i = j
    return episodes


def average_drawdown_frac(episodes: Sequence[DrawdownEpisode]) -> float:
    """Average drawdown = mean of the episodes' depths (fraction); 0 with no episode."""
    return float(np.mean([e.depth_frac for e in episodes])) if episodes else 0.0


def time_to_recover_days(episodes: Sequence[DrawdownEpisode]) -> float:
    """Longest (end - peak) over the episodes, in days; an open drawdown counts to the end."""
    if not episodes:
        return 0.0
    return max(e.end_ts_ns - e.peak_ts_ns for e in episodes) / NS_PER_DAY


# --- fills -> trades: services/backtest/trades.py (re-exported here) -----------------------

from services.backtest.trades import FillRow as FillRow  # noqa: E402
from services.backtest.trades import Trade as Trade  # noqa: E402
from services.backtest.trades import reconstruct_trades as reconstruct_trades  # noqa: E402
from services.backtest.trades import trade_stats as trade_stats  # noqa: E402

# --- activity and costs -------------------------------------------------------------------


def turnover_per_year(
    traded_notional_usd: float,
    average_equity_usd: float,
    n_days: int,
    periods_per_year: float = DEFAULT_PERIODS_PER_YEAR,
) -> float:
    """Turnover = (traded notional / average equity) / years, years = n_days / P (1/yr)."""
    if n_days <= 0 or not average_equity_usd > 0:
        return NAN
    return traded_notional_usd / average_equity_usd / (n_days / periods_per_year)


def fill_costs_usd(
    side: str,
    qty: float,
    price: float,
    fee_usd: float,
    slippage_bps: float,
    decision_price: float | None,
    funding_usd: float = 0.0,
) -> tuple[float, float, float]:
    """(fee_usd, slippage_usd, funding_usd) of one fill; positive = a cost.

    slippage_usd = d * (price - decision_price) * qty (the fill model's slippage_bps
    times the decision notional); without a decision price, slippage_bps/1e4 * qty * price.
    """
    if decision_price:
        d = 1.0 if side == "buy" else -1.0
        slip = d * (price - decision_price) * qty
    else:
        slip = slippage_bps / 1e4 * qty * price
    return fee_usd, slip, funding_usd


def cost_shares(
    net_pnl_usd: float, fees_usd: float, slippage_usd: float, funding_usd: float
) -> dict[str, float]:
    """Gross alpha and the share of it each cost takes.

    gross_alpha_usd = net_pnl_usd + fees_usd + slippage_usd + funding_usd: the PnL of
    trading at the decision price with no fees or funding. x_share = x_usd / gross alpha;
    NaN when gross alpha <= 0 (no alpha to take a share of).
    """
    gross = net_pnl_usd + fees_usd + slippage_usd + funding_usd

    def share(x: float) -> float:
        return x / gross if gross > 0 else NAN

    return {
        "gross_alpha_usd": gross,
        "fee_share": share(fees_usd),
        "slippage_share": share(slippage_usd),
        "funding_share": share(funding_usd),
        "cost_share": share(fees_usd + slippage_usd + funding_usd),
    }


def capacity_estimate(
    net_pnl_usd: float, gross_alpha_usd: float, impact_usd: float, average_equity_usd: float
) -> dict[str, float]:
    """AUM at which square-root impact eats the edge (seed 001 §6; Almgren et al. 2005).

    Scale every order by L (AUM = L * average equity). Gross alpha and the linear costs
    (fees, spread, funding) scale as L; impact_bps ~ sqrt(size) so the impact cost, I =
    sum(notional * impact_bps / 1e4) over the fills, scales as L^1.5. Then
    net(L) = L * (net + I) - L^1.5 * I, zero at L_be = ((net + I) / I)^2 (breakeven AUM),
    and impact alone equals gross alpha at L_g = (gross alpha / I)^2. NaN without impact.
    """
    out = {
        "impact_cost_usd": impact_usd,
        "breakeven_aum_usd": NAN,
        "impact_eats_gross_alpha_aum_usd": NAN,
    }
    if not impact_usd > 0 or not average_equity_usd > 0:
        return out
    for key, edge in (
        ("breakeven_aum_usd", net_pnl_usd + impact_usd),
        ("impact_eats_gross_alpha_aum_usd", gross_alpha_usd),
    ):
        out[key] = (max(edge, 0.0) / impact_usd) ** 2 * average_equity_usd
    return out


# --- grouping and stability ----------------------------------------------------------------


def dominant_model(engine_votes: dict[str, dict[str, float]]) -> str:
    """The model with the largest |weight * edge_bps| vote; ties go to the smaller model_id."""
    best, best_score = "unknown", -1.0
    for model_id in sorted(engine_votes):
        v = engine_votes[model_id] or {}
        score = abs(float(v.get("weight") or 0.0) * float(v.get("edge_bps") or 0.0))
        if score > best_score:
            best, best_score = model_id, score
    return best


def compound(returns: np.ndarray) -> float:
    """Compounded return of a run of periods: prod(1 + r) - 1 (fraction)."""
    return float(np.prod(1.0 + np.asarray(returns, dtype=float)) - 1.0)


def dispersion(values: Iterable[float]) -> dict[str, float]:
    """mean, std (ddof=1, NaN below two values), min, max, median of the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"n": 0, "mean": NAN, "std": NAN, "min": NAN, "max": NAN, "median": NAN}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else NAN,
        "min": float(v.min()),
        "max": float(v.max()),
        "median": float(np.median(v)),
    }
