"""`edgebus validate permutation --returns FILE | --backtest DIR [--permutations N] [--seed S]`.

The I/O shell of services/validation/permutation.py: it reads the inputs, reports bad rows
on stderr by line number (and skips them), and prints the result as one JSON document.

--returns FILE: CSV with header ``ts, position, asset_return`` (ts ISO-8601 or epoch ns;
position the signed fraction of capital held over the period; asset_return the asset's
simple return over it).

--backtest DIR: the output of `edgebus backtest` (services/backtest/runner.py ``write``).
The periods are the intervals between consecutive fills of a symbol, the only times the
output prices a symbol: over the interval from fill i to fill i + 1, position = the signed
quantity held after fill i * its price / starting equity (equity.csv's first row) and
asset_return = mid(i + 1) / mid(i) - 1 (the fill price where a fill has no mid). Every
symbol's intervals go into one series, ordered by start time. With fewer than two fills
it falls back to equity.csv's period returns with position 1, where every re-pairing is
the observed one and p = 1 (``"source": "equity"`` says so).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from services.validation import permutation as perm

MAX_REPORTED_ROWS = 20


@dataclass
class Series:
    ts_ns: list[int] = field(default_factory=list)
    position: list[float] = field(default_factory=list)
    asset_return: list[float] = field(default_factory=list)
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    source: str = "returns"


def parse_ts_ns(text: str) -> int:
    """Epoch ns (an integer) or ISO-8601 (naive means UTC)."""
    s = text.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def _finite(text: str, name: str) -> float:
    x = float(text)
    if not np.isfinite(x):
        raise ValueError(f"{name} is not finite")
    return x


def read_returns_csv(path: Path) -> Series:
    out = Series()
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = {"ts", "position", "asset_return"} - set(header)
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(sorted(missing))}")
        i_ts, i_pos, i_ret = (header.index(c) for c in ("ts", "position", "asset_return"))
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            try:
                ts = parse_ts_ns(row[i_ts])
                pos = _finite(row[i_pos], "position")
                ret = _finite(row[i_ret], "asset_return")
            except (ValueError, IndexError, OverflowError) as exc:
                out.bad_rows.append((line, str(exc) or type(exc).__name__))
                continue
            out.ts_ns.append(ts)
            out.position.append(pos)
            out.asset_return.append(ret)
    return out


def _read_rows(path: Path) -> tuple[list[dict[str, str]], list[int]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows, lines = [], []
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    return rows, lines


def read_backtest_dir(out_dir: Path) -> Series:
    """Periods from fills.csv and equity.csv (the module docstring says how)."""
    out = Series(source="fills")
    eq_rows, eq_lines = _read_rows(out_dir / "equity.csv")
    equity: list[tuple[int, float]] = []
    for row, line in zip(eq_rows, eq_lines, strict=True):
        try:
            equity.append((int(row["ts_ns"]), _finite(row["equity_usd"], "equity_usd")))
        except (ValueError, KeyError, TypeError) as exc:
            out.bad_rows.append((line, f"equity.csv: {exc}"))
    start_equity = equity[0][1] if equity and equity[0][1] > 0 else 1.0
    fills: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    fill_path = out_dir / "fills.csv"
    fill_rows, fill_lines = _read_rows(fill_path) if fill_path.exists() else ([], [])
    for row, line in zip(fill_rows, fill_lines, strict=True):
        try:
            sign = {"buy": 1.0, "sell": -1.0}[row["side"].strip().lower()]
            price = _finite(row["price"], "price")
            mid = _finite(row["mid"], "mid") if row.get("mid") else price
            if price <= 0 or mid <= 0:
                raise ValueError("price or mid <= 0")
            fills[row["symbol"]].append(
                (int(row["ts_ns"]), sign * _finite(row["qty"], "qty"), price, mid)
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            out.bad_rows.append((line, f"fills.csv: {exc}"))
    periods: list[tuple[int, float, float]] = []
    for symbol_fills in fills.values():
        symbol_fills.sort()
        units = 0.0
        for (ts, dq, price, mid), (_, _, _, next_mid) in zip(
            symbol_fills, symbol_fills[1:], strict=False
        ):
            units += dq
            periods.append((ts, units * price / start_equity, next_mid / mid - 1.0))
    if not periods:
        out.source = "equity"
        for (_, prev), (ts, eq) in zip(equity, equity[1:], strict=False):
            if prev > 0:
                periods.append((ts, 1.0, eq / prev - 1.0))
    periods.sort()
    out.ts_ns = [p[0] for p in periods]
    out.position = [p[1] for p in periods]
    out.asset_return = [p[2] for p in periods]
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebus validate permutation", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--returns", type=Path, help="CSV: ts, position, asset_return")
    src.add_argument("--backtest", type=Path, help="an `edgebus backtest` output directory")
    p.add_argument("--permutations", type=int, default=perm.DEFAULT_PERMUTATIONS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("shuffle", "shift"), default="shuffle")
    p.add_argument("--alpha", type=float, default=perm.DEFAULT_ALPHA)
    p.add_argument(
        "--periods-per-year",
        type=float,
        default=None,
        help="annualisation P (default: the observed rate, (n - 1) / span in years)",
    )
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    series = read_returns_csv(args.returns) if args.returns else read_backtest_dir(args.backtest)
    for line, reason in series.bad_rows[:MAX_REPORTED_ROWS]:
        print(f"line {line}: {reason} (skipped)", file=sys.stderr)
    if len(series.bad_rows) > MAX_REPORTED_ROWS:
        print(f"... {len(series.bad_rows)} bad rows in all", file=sys.stderr)
    if len(series.ts_ns) < 2:
        raise ValueError(f"{len(series.ts_ns)} usable periods: a test needs at least 2")
    # rows in time order, as the periods happened
    order = np.argsort(np.asarray(series.ts_ns, dtype=np.int64), kind="stable")
    ts = np.asarray(series.ts_ns, dtype=np.int64)[order]
    ppy = args.periods_per_year or perm.periods_per_year_from_ts(ts)
    result = perm.permutation_test(
        np.asarray(series.position, dtype=np.float64)[order],
        np.asarray(series.asset_return, dtype=np.float64)[order],
        n_permutations=args.permutations,
        seed=args.seed,
        periods_per_year=ppy,
        method=args.method,
        alpha=args.alpha,
    )
    doc = result.as_dict()
    doc["source"] = series.source
    doc["bad_rows"] = len(series.bad_rows)
    return doc


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.permutations < 1:
        print("edgebus validate permutation: --permutations must be >= 1", file=sys.stderr)
        return 2
    try:
        doc = run(args)
    except (OSError, ValueError, StopIteration) as exc:
        print(f"edgebus validate permutation: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0
