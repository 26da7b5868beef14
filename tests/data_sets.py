"""Real market data for tests, from PyPI packages (test-only; callers
``pytest.importorskip("arch")`` first).

``daily_bars_csv``: the S&P 500 (SPX) and NASDAQ Composite (NDX) daily bars that
``arch`` ships (``arch.data.sp500``, ``arch.data.nasdaq``: Yahoo Finance, 1999-01-04 to
2018-12-31, 5,031 sessions each) as a replay bars CSV (CONTRACT.md "Replay input").
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")


def _frames() -> dict[str, Any]:
    from arch.data import nasdaq, sp500

    return {"SPX": sp500.load(), "NDX": nasdaq.load()}


def daily_bars(symbols: Iterable[str] = ("SPX", "NDX")) -> list[tuple[Any, ...]]:
    """(ts ISO date, symbol, open, high, low, close, volume) rows, sorted by ts then
    symbol; the unadjusted close (open, high and low are unadjusted too)."""
    frames = _frames()
    rows = []
    for symbol in symbols:
        df = frames[symbol]
        for ts, o, h, lo, c, v in zip(
            df.index, df["Open"], df["High"], df["Low"], df["Close"], df["Volume"], strict=True
        ):
            day = ts.date().isoformat()
            rows.append((day, symbol, float(o), float(h), float(lo), float(c), float(v)))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def daily_bars_csv(path: Path, symbols: Iterable[str] = ("SPX", "NDX")) -> Path:
    """Write ``daily_bars(symbols)`` to ``path`` with columns
    ts,symbol,open,high,low,close,volume; returns ``path``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for row in daily_bars(symbols):
            w.writerow([row[0], row[1], *(repr(x) for x in row[2:])])
    return path
