"""The backtest report's HTML: one self-contained page (inline SVG figures made with
matplotlib, no external URL), deterministic for the same report (services/backtest/report.py
builds the report and calls ``render_html``)."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from services.backtest import metrics as m

# ---- html -------------------------------------------------------------------------------

_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;"
    "margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.neg{color:#b00}"
)


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.4g}"
    return html.escape(str(x))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(x: Any) -> str:
        neg = isinstance(x, float) and x < 0
        return f"<td{' class=neg' if neg else ''}>{_fmt(x)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(x) for x in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _nested_table(first: str, groups: dict[str, dict[str, Any]] | None) -> str:
    """Rows = groups, columns = the union of their keys (sorted)."""
    if not groups:
        return "<p>none</p>"
    cols = sorted({k for g in groups.values() for k in g})
    return _table(
        [first, *cols], [[label, *(g.get(c) for c in cols)] for label, g in groups.items()]
    )


def _figures(series: dict[str, np.ndarray], report: dict[str, Any]) -> list[str]:
    """Inline SVG figures, deterministic (fixed hash salt, no date, text kept as text)."""
    try:
        from matplotlib import rc_context
        from matplotlib.figure import Figure
    except ImportError:
        return ["<p>matplotlib is not installed: no figures</p>"]
    figs: list[Figure] = []
    eq, dd = series["equity_usd"], m.drawdown_frac(series["equity_usd"])
    # an SVG of a million marks is tens of MB: plot <= ~4000, always keeping the deepest
    step = max(1, eq.size // 4000)
    keep: np.ndarray = np.arange(0, eq.size, step, dtype=np.int64)
    if eq.size:
        keep = np.unique(np.r_[keep, eq.size - 1, int(np.argmax(dd))])
    t = series["ts_ns"][keep].astype("datetime64[ns]")
    fig = Figure(figsize=(10, 5.5))
    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ax_eq.plot(t, eq[keep], label="net equity")
    ax_eq.plot(t, series["gross_equity_usd"][keep], label="gross (before costs)", alpha=0.7)
    ax_eq.set_ylabel("USD")
    ax_eq.legend(loc="upper left")
    ax_dd.fill_between(t, -100 * dd[keep], 0.0, color="#b00")
    ax_dd.set_ylabel("drawdown %")
    figs.append(fig)
    bars = {
        "realised PnL by symbol (USD)": {
            s: v["realised_pnl_usd"] for s, v in report["by_symbol"].items()
        },
        "costs (USD; impact is part of slippage)": {
            k: report["costs"][f"{k}_usd"] for k in ("fees", "slippage", "funding", "impact")
        },
    }
    for title, key in (("PnL by regime (USD)", "by_regime"), ("PnL by model (USD)", "by_model")):
        if report.get(key):
            bars[title] = {k: v["pnl_usd"] for k, v in report[key].items()}
    for title, values in bars.items():
        fig = Figure(figsize=(8, 3))
        ax = fig.subplots()
        vals = [v if v is not None else 0.0 for v in values.values()]
        ax.bar(list(values), vals, color=["#b00" if v < 0 else "#36c" for v in vals])
        ax.set_title(title)
        figs.append(fig)
    out = []
    with rc_context({"svg.hashsalt": "edgebus-backtest", "svg.fonttype": "none"}):
        for fig in figs:
            fig.tight_layout()
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
            svg = buf.getvalue()
            # drop the XML prolog and the RDF metadata block (namespace URLs, no content)
            svg = re.sub(r"<metadata>.*?</metadata>", "", svg[svg.index("<svg") :], flags=re.S)
            out.append(svg)
    return out


def render_html(report: dict[str, Any], series: dict[str, np.ndarray]) -> str:
    """The self-contained HTML page of a (cleaned) report and its equity series."""
    figs = _figures(series, report)
    h = report["metrics"]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Backtest report"
        f"</title><style>{_CSS}</style></head><body><h1>Backtest report</h1>"
    ]
    if isinstance(report.get("run"), dict):
        parts.append("<h2>Run</h2>" + _table(["key", "value"], sorted(report["run"].items())))
    parts.append("<h2>Headline metrics</h2>" + _table(["metric", "value"], sorted(h.items())))
    parts.append("<h2>Equity and drawdown</h2>" + figs[0])
    parts.append("<h2>PnL by symbol</h2>" + _nested_table("symbol", report["by_symbol"]))
    parts.extend(figs[1:2])
    for title, key in (("PnL by regime", "by_regime"), ("PnL by model", "by_model")):
        parts.append(f"<h2>{title}</h2>")
        if report.get(key) is None:
            parts.append("<p>skipped: no events.csv in this run</p>")
        else:
            parts.append(_nested_table(key[3:], report[key]))
    parts.extend(figs[3:])
    parts.append(
        "<h2>Cost breakdown</h2>" + _table(["item", "value"], sorted(report["costs"].items()))
    )
    parts.append(figs[2] if len(figs) > 2 else "")
    parts.append(
        "<h2>Capacity</h2>" + _table(["item", "value"], sorted(report["capacity"].items()))
    )
    month_cols = [f"{i:02d}" for i in range(1, 13)] + ["year"]
    rows = [
        [y, *(mo.get(c) for c in month_cols)] for y, mo in report["monthly_returns_pct"].items()
    ]
    parts.append("<h2>Monthly returns (%)</h2>" + _table(["year", *month_cols], rows))
    parts.append("<h2>By year</h2>" + _nested_table("year", report["by_year"]))
    for scope in ("years", "symbols"):
        parts.append(
            f"<h2>Stability across {scope}</h2>"
            + _nested_table("metric", report["stability"][scope])
        )
    parts.append(
        "<h2>Conventions and notes</h2>"
        + _table(["item", "value"], sorted(report["conventions"].items()))
        + "".join(f"<p>{html.escape(n)}</p>" for n in report["notes"])
    )
    return "".join(parts) + "</body></html>\n"
