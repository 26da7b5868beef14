"""Integrity checks of a recorded quote history (seed 003 "Daily Schedule", 02:00 UTC:
"integrity checks" before the feature build and walk-forward).

A row is (line_no, ts_ns, symbol, bid, ask): ``line_no`` the row's line in its file, for
the report. Checks, each finding naming its line:

- ``nan``: bid or ask is NaN or infinite;
- ``non_positive``: bid <= 0 or ask <= 0;
- ``crossed``: bid > ask (a locked book, bid = ask, is allowed);
- ``duplicate``: the same (ts_ns, symbol, bid, ask) as an earlier row (the later row is
  reported, naming the first);
- ``out_of_order``: ts_ns earlier than the latest ts_ns seen before it for its symbol;
- ``gap``: more than the symbol's ``max_gap_ns`` from the latest earlier ts_ns of the
  symbol to this row (the quiet time the feed allows: a market's night or weekend wants
  its own limit).

Rows are checked in the order given (the file's order). An out-of-order row does not move
the symbol's clock, so one late row is one finding, not two. A duplicate is only that
finding. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

CHECKS = ("nan", "non_positive", "crossed", "duplicate", "out_of_order", "gap")


# (line_no, ts_ns, symbol, bid, ask, ...): fields past the fifth are not checked
QuoteLike = tuple[Any, ...]


class QuoteRow(NamedTuple):
    line_no: int
    ts_ns: int
    symbol: str
    bid: float
    ask: float


@dataclass(frozen=True)
class Finding:
    line_no: int
    symbol: str
    check: str  # one of CHECKS
    detail: str


def check_quotes(
    rows: Iterable[QuoteLike],
    max_gap_ns: int | Mapping[str, int] | None = None,
) -> list[Finding]:
    """Every finding of the module docstring's checks, in row order.

    ``max_gap_ns``: one limit for every symbol, or symbol -> limit (a symbol not in it
    is not checked for gaps); None checks no gap.
    """
    findings: list[Finding] = []
    seen: dict[tuple[int, str, float, float], int] = {}
    last_ts: dict[str, int] = {}
    for row in rows:
        line_no, ts_ns, symbol, bid, ask = QuoteRow(*row[:5])
        if not (math.isfinite(bid) and math.isfinite(ask)):
            findings.append(Finding(line_no, symbol, "nan", f"bid={bid!r} ask={ask!r}"))
        else:
            if bid <= 0 or ask <= 0:
                findings.append(
                    Finding(line_no, symbol, "non_positive", f"bid={bid!r} ask={ask!r}")
                )
            if bid > ask:
                findings.append(Finding(line_no, symbol, "crossed", f"bid {bid!r} > ask {ask!r}"))
            key = (ts_ns, symbol, bid, ask)
            if key in seen:
                findings.append(Finding(line_no, symbol, "duplicate", f"same as line {seen[key]}"))
                continue
            seen[key] = line_no
        prev = last_ts.get(symbol)
        if prev is not None and ts_ns < prev:
            findings.append(
                Finding(line_no, symbol, "out_of_order", f"ts_ns {ts_ns} < {prev} seen before")
            )
            continue
        limit = max_gap_ns.get(symbol) if isinstance(max_gap_ns, Mapping) else max_gap_ns
        if prev is not None and limit is not None and ts_ns - prev > limit:
            findings.append(
                Finding(line_no, symbol, "gap", f"{(ts_ns - prev) / 1e9:g} s > {limit / 1e9:g} s")
            )
        last_ts[symbol] = ts_ns
    return findings


def summary(findings: Iterable[Finding], n_rows: int) -> dict[str, Any]:
    """JSON-able: ``n_rows``, ``counts`` (check -> findings, every check listed), the lines
    with a finding ``n_bad_lines``, ``ok`` (no finding) and the ``findings`` themselves."""
    found = list(findings)
    counts = {c: 0 for c in CHECKS}
    for f in found:
        counts[f.check] += 1
    return {
        "n_rows": n_rows,
        "counts": counts,
        "n_bad_lines": len({f.line_no for f in found}),
        "ok": not found,
        "findings": [asdict(f) for f in found],
    }


def integrity_report(
    rows: Iterable[QuoteLike],
    max_gap_ns: int | Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """``summary(check_quotes(rows, max_gap_ns), n_rows)`` in one pass over the rows."""
    materialised = list(rows)
    return summary(check_quotes(materialised, max_gap_ns), len(materialised))
