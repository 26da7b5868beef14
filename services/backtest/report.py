"""The backtest report: read a run's CSVs, compute the metrics, write report.json/.html.

`build(out_dir)` reads orders.csv, fills.csv, decisions.csv, equity.csv and (optional)
events.csv written by `edgebus backtest`, computes the metrics of ``metrics.py`` and
merges its sections into ``report.json`` (top-level keys it does not produce, such as the
runner's ``run``, are kept), then writes a self-contained ``report.html`` (inline SVG
figures, no external URL). Both files are deterministic: the same CSVs give the same bytes.
`python -m services.backtest.report DIR` rebuilds them. Definitions: docs/backtest_report.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import pathlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from services.backtest import metrics as m
from services.backtest.report_html import render_html

Row = dict[str, str]


# --- reading ----------------------------------------------------------------------------


def read_rows(path: pathlib.Path) -> list[Row] | None:
    """The rows of a CSV with a header, or None when the file is absent."""
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(row: Row, key: str, default: float | None = None) -> float | None:
    text = (row.get(key) or "").strip()
    return float(text) if text else default


def _ts_ns(row: Row) -> int:
    text = (row.get("ts_ns") or "").strip()
    if text:
        return int(float(text)) if "." in text or "e" in text.lower() else int(text)
    stamp = datetime.fromisoformat(row["ts"].strip().replace("Z", "+00:00"))
    return int(round(stamp.timestamp() * 1e6)) * 1000


# --- sections ----------------------------------------------------------------------------


def _equity_metrics(ts_ns: np.ndarray, equity_usd: np.ndarray, ppy: float) -> dict[str, float]:
    """Return, ratio and drawdown figures of one equity curve (full-resolution marks)."""
    _, r = m.daily_returns(ts_ns, equity_usd)
    episodes = m.drawdown_episodes(ts_ns, equity_usd)
    max_dd = m.max_drawdown_frac(equity_usd)
    ann = m.annual_return(r, ppy)
    return {
        "sharpe": m.sharpe_ratio(r, ppy),
        "sortino": m.sortino_ratio(r, ppy),
        "calmar": m.calmar_ratio(ann, max_dd),
        "annual_return_pct": 100 * ann,
        "total_return_pct": 100 * m.compound(r),
        "annual_volatility_pct": 100 * float(np.std(r, ddof=1)) * math.sqrt(ppy)
        if r.size > 1
        else m.NAN,
        "max_drawdown_pct": 100 * max_dd,
        "average_drawdown_pct": 100 * m.average_drawdown_frac(episodes),
        "time_to_recover_days": m.time_to_recover_days(episodes),
        "n_drawdowns": len(episodes),
    }


def _trade_metrics(trades: Sequence[m.Trade], n_days: int) -> dict[str, float]:
    out: dict[str, float] = dict(m.trade_stats([t.pnl_usd for t in trades]))
    out["trades_per_day"] = len(trades) / n_days if n_days else m.NAN
    out["avg_holding_time_s"] = float(np.mean([t.holding_s for t in trades])) if trades else m.NAN
    out["realised_pnl_usd"] = float(sum(t.pnl_usd for t in trades))
    return out


def _fills_table(fills: list[Row]) -> dict[str, np.ndarray]:
    """Per-fill arrays in time order: costs, notional, impact."""
    fills = sorted(fills, key=_ts_ns)  # stable: file order within a timestamp
    cols: dict[str, list[Any]] = defaultdict(list)
    for f in fills:
        qty, price = float(f["qty"]), float(f["price"])
        fee, slip, fund = m.fill_costs_usd(
            f["side"],
            qty,
            price,
            _num(f, "fee", 0.0) or 0.0,
            _num(f, "slippage_bps", 0.0) or 0.0,
            _num(f, "decision_price"),
            _num(f, "funding_usd", 0.0) or 0.0,
        )
        impact_bps = _num(f, "impact_bps")
        cols["symbol"].append(f["symbol"])
        cols["ts_ns"].append(_ts_ns(f))
        cols["notional_usd"].append(qty * price)
        cols["fee_usd"].append(fee)
        cols["slippage_usd"].append(slip)
        cols["funding_usd"].append(fund)
        cols["impact_usd"].append(qty * price * impact_bps / 1e4 if impact_bps else 0.0)
        cols["fill"].append(m.FillRow(f["symbol"], _ts_ns(f), f["side"], qty, price, fee))
    keys = (
        "symbol",
        "ts_ns",
        "notional_usd",
        "fee_usd",
        "slippage_usd",
        "funding_usd",
        "impact_usd",
        "fill",
    )
    return {k: np.asarray(cols[k], dtype=object if k in ("symbol", "fill") else None) for k in keys}


def _attribution(events: list[Row]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Realised PnL by regime and by model; a trade is labelled by its first event.

    Rows sharing a trade_id form one trade (PnL = sum of realized_pnl_usd); a row without
    trade_id is a trade of its own. The model is the dominant |weight * edge_bps| vote.
    """
    first: dict[str, Row] = {}
    pnl: dict[str, float] = defaultdict(float)
    closed: set[str] = set()
    for i, e in enumerate(sorted(events, key=_ts_ns)):
        key = (e.get("trade_id") or "").strip() or f"row{i}"
        first.setdefault(key, e)
        realised = _num(e, "realized_pnl_usd")
        if realised is not None:
            pnl[key] += realised
            closed.add(key)
    by: dict[str, dict[str, list[float]]] = {
        "regime": defaultdict(list),
        "model": defaultdict(list),
    }
    for key in sorted(closed):
        e = first[key]
        try:
            votes = json.loads(e.get("engine_votes") or "{}")
        except json.JSONDecodeError:
            votes = {}
        by["regime"][(e.get("regime") or "").strip() or "unknown"].append(pnl[key])
        by["model"][m.dominant_model(votes) if isinstance(votes, dict) else "unknown"].append(
            pnl[key]
        )

    def table(groups: dict[str, list[float]]) -> dict[str, Any]:
        return {
            label: {"pnl_usd": float(sum(p)), **m.trade_stats(p)} for label, p in groups.items()
        }

    return table(by["regime"]), table(by["model"])


def compute(tables: dict[str, list[Row] | None], periods_per_year: float) -> tuple[dict, dict]:
    """(report sections, series for the figures) from the parsed CSV rows."""
    ppy = periods_per_year
    notes: list[str] = []
    eq_rows = sorted(tables["equity"] or [], key=_ts_ns)
    ts = np.asarray([_ts_ns(r) for r in eq_rows], dtype=np.int64)
    equity = np.asarray([float(r["equity_usd"]) for r in eq_rows], dtype=float)
    first_net = _num(eq_rows[0], "net_pnl_usd") if eq_rows else None
    if first_net:  # the first mark comes after some PnL (fees): start from the capital
        ts, equity = np.r_[ts[0], ts], np.r_[equity[0] - first_net, equity]
    days, r_net = m.daily_returns(ts, equity)
    n_days = int(days.size)
    fx = _fills_table(tables["fills"] or [])
    cost_usd = fx["fee_usd"] + fx["slippage_usd"] + fx["funding_usd"]
    gross_equity = m.gross_equity_usd(ts, equity, fx["ts_ns"], cost_usd)
    trades, n_open = m.reconstruct_trades(fx["fill"].tolist())
    avg_equity = float(np.mean(m.daily_equity_closes(ts, equity))) if ts.size else m.NAN
    net_pnl = float(equity[-1] - equity[0]) if ts.size else 0.0
    fees, slip, fund = (float(fx[k].sum()) for k in ("fee_usd", "slippage_usd", "funding_usd"))
    costs = {
        "fees_usd": fees,
        "slippage_usd": slip,
        "funding_usd": fund,
        "net_pnl_usd": net_pnl,
        **m.cost_shares(net_pnl, fees, slip, fund),
    }
    if "funding_usd" not in (tables["fills"] or [{}])[0]:
        notes.append(
            "funding: fills carry no funding_usd and funding.csv is not read, "
            "so funding cost and funding share are 0"
        )
    capacity = m.capacity_estimate(
        net_pnl, costs["gross_alpha_usd"], float(fx["impact_usd"].sum()), avg_equity
    )
    notional = float(fx["notional_usd"].sum())

    net = _equity_metrics(ts, equity, ppy)
    gross = _equity_metrics(ts, gross_equity, ppy)
    ratios = ("sharpe", "sortino", "calmar", "annual_return_pct", "total_return_pct")
    headline = {f"{k}_net": net[k] for k in (*ratios, "annual_volatility_pct")}
    headline |= {f"{k}_gross": gross[k] for k in ratios}
    headline |= {
        k: net[k]
        for k in ("max_drawdown_pct", "average_drawdown_pct", "time_to_recover_days", "n_drawdowns")
    }
    headline |= _trade_metrics(trades, n_days)
    headline |= {
        "n_open_trades": n_open,
        "n_days": n_days,
        "n_fills": len(fx["ts_ns"]),
        "n_orders": len(tables["orders"] or []),
        "traded_notional_usd": notional,
        "turnover_per_year": m.turnover_per_year(notional, avg_equity, n_days, ppy),
        "start_equity_usd": float(equity[0]) if ts.size else m.NAN,
        "end_equity_usd": float(equity[-1]) if ts.size else m.NAN,
        "average_equity_usd": avg_equity,
        "net_pnl_usd": net_pnl,
        "gross_alpha_usd": costs["gross_alpha_usd"],
        "fee_share": costs["fee_share"],
        "slippage_share": costs["slippage_share"],
        "funding_share": costs["funding_share"],
        "capacity_aum_usd": capacity["breakeven_aum_usd"],
    }
    years, months = m.day_year_month(days)

    by_year: dict[str, Any] = {}
    close_years = m.day_year_month(m.utc_day(np.array([t.close_ts_ns for t in trades])))[0]
    mark_years, _ = m.day_year_month(m.utc_day(ts))
    for y in sorted(set(years.tolist())):
        sel = np.flatnonzero(mark_years == y)
        lo = max(int(sel[0]) - 1, 0)  # the year starts from the previous close
        ys = _equity_metrics(ts[lo : sel[-1] + 1], equity[lo : sel[-1] + 1], ppy)
        ys["total_return_pct"] = 100 * m.compound(r_net[years == y])
        yt = [t for t, ty in zip(trades, close_years, strict=True) if ty == y]
        by_year[str(y)] = ys | _trade_metrics(yt, int((years == y).sum()))

    by_symbol: dict[str, Any] = {}
    for sym in sorted(set(fx["symbol"].tolist())):
        st = [t for t in trades if t.symbol == sym]
        sel = fx["symbol"] == sym
        daily_pnl = np.zeros(n_days)
        for t in st:  # realised PnL on its close day, as a fraction of average equity
            idx = t.close_ts_ns // m.NS_PER_DAY - int(days[0]) if n_days else -1
            if 0 <= idx < n_days:
                daily_pnl[idx] += t.pnl_usd
        sym_notional = float(fx["notional_usd"][sel].sum())
        by_symbol[sym] = _trade_metrics(st, n_days) | {
            "sharpe_realised": m.sharpe_ratio(daily_pnl / avg_equity, ppy),
            "fees_usd": float(fx["fee_usd"][sel].sum()),
            "slippage_usd": float(fx["slippage_usd"][sel].sum()),
            "traded_notional_usd": sym_notional,
            "turnover_per_year": m.turnover_per_year(sym_notional, avg_equity, n_days, ppy),
        }

    monthly: dict[str, dict[str, float]] = defaultdict(dict)
    for y, mo in sorted(set(zip(years.tolist(), months.tolist(), strict=True))):
        monthly[str(y)][f"{mo:02d}"] = 100 * m.compound(r_net[(years == y) & (months == mo)])
    for y in list(monthly):
        monthly[y]["year"] = 100 * m.compound(r_net[years == int(y)])

    stable = (
        "sharpe",
        "sortino",
        "annual_return_pct",
        "total_return_pct",
        "max_drawdown_pct",
        "hit_rate",
        "profit_factor",
        "realised_pnl_usd",
        "n_trades",
    )
    sym_keys = (
        "sharpe_realised",
        "hit_rate",
        "profit_factor",
        "realised_pnl_usd",
        "n_trades",
        "avg_holding_time_s",
        "turnover_per_year",
    )
    stability = {
        "years": {k: m.dispersion(v[k] for v in by_year.values()) for k in stable},
        "symbols": {k: m.dispersion(v[k] for v in by_symbol.values()) for k in sym_keys},
    }

    by_regime = by_model = None
    if tables["events"] is None:
        notes.append("events.csv absent: no PnL by regime or by model")
    else:
        by_regime, by_model = _attribution(tables["events"])
    decisions: dict[str, int] = defaultdict(int)
    for d in tables["decisions"] or []:
        decisions[d.get("action") or "unknown"] += 1

    report = {
        "metrics": headline,
        "costs": costs | {"impact_usd": capacity["impact_cost_usd"]},
        "capacity": capacity | {"method": "square-root impact: L_be = ((net + I) / I)^2"},
        "by_symbol": by_symbol,
        "by_year": by_year,
        "by_regime": by_regime,
        "by_model": by_model,
        "monthly_returns_pct": dict(monthly),
        "stability": stability,
        "decisions": dict(decisions),
        "conventions": {
            "periods_per_year": ppy,
            "risk_free_rate": 0.0,
            "sortino_target": 0.0,
            "returns": "simple daily returns, last equity of each UTC day (event time)",
            "fractions": "hit_rate and *_share are fractions (0.5 = 50 %); *_pct are percent",
        },
        "notes": notes,
    }
    series = {"ts_ns": ts, "equity_usd": equity, "gross_equity_usd": gross_equity}
    return report, series


# --- writing -----------------------------------------------------------------------------


def clean_json(value: Any) -> Any:
    """JSON-ready copy: NaN/inf -> None, floats to 10 significant digits, numpy -> python."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    x = float(value)
    return float(f"{x:.10g}") if math.isfinite(x) else None


def build(out_dir: pathlib.Path, periods_per_year: float = m.DEFAULT_PERIODS_PER_YEAR) -> dict:
    """Compute the report of the run in out_dir; merge into report.json, write report.html."""
    out_dir = pathlib.Path(out_dir)
    names = ("orders", "fills", "decisions", "equity", "events")
    tables = {n: read_rows(out_dir / f"{n}.csv") for n in names}
    if tables["equity"] is None:
        raise FileNotFoundError(f"{out_dir / 'equity.csv'}: the report needs the equity curve")
    sections, series = compute(tables, periods_per_year)
    json_path = out_dir / "report.json"
    merged: dict[str, Any] = {}
    if json_path.exists():
        try:
            merged = json.loads(json_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{json_path}: not JSON ({exc}); refusing to overwrite it") from exc
    merged.update(clean_json(sections))
    json_path.write_text(
        json.dumps(merged, sort_keys=True, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    (out_dir / "report.html").write_text(render_html(merged, series), encoding="utf-8")
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.backtest.report", description="Rebuild report.json and report.html"
    )
    parser.add_argument("out_dir", type=pathlib.Path, help="the backtest output directory")
    parser.add_argument(
        "--periods-per-year",
        type=float,
        default=m.DEFAULT_PERIODS_PER_YEAR,
        help="annualisation of daily returns (252 default; 365 for 24/7)",
    )
    args = parser.parse_args(argv)
    report = build(args.out_dir, args.periods_per_year)
    h = report["metrics"]
    print(
        f"{args.out_dir / 'report.json'}: sharpe_net={h['sharpe_net']} "
        f"max_drawdown_pct={h['max_drawdown_pct']} n_trades={h['n_trades']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
