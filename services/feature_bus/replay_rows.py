"""Recorded files -> raw quotes, one row at a time (CONTRACT.md "Replay input"). Pure.

Columns: ``ts`` (ISO-8601, naive = UTC, or integer epoch nanoseconds), ``symbol``, and
either quotes (``bid``, ``ask``, ``bid_size``, ``ask_size``) or bars (``open``,
``high``, ``low``, ``close``, ``volume``). A bar becomes a quote around its close with
``bar_spread_bps``: bid = close (1 - s / 2e4), ask = close (1 + s / 2e4), half the bar's
volume on each side, ``volume`` carried as traded volume, and the bar's ``open``,
``high`` and ``low`` carried along (the features use them: ADX on the true range).
``trace_ts_ns`` is left 0: feature_bus stamps it when it takes the quote in.

Optional print columns (docs/feature_bus.md "Prints"), either kind: ``trade_qty`` (the
volume traded since the previous row, >= 0), ``trade_side`` (+1 buyer-initiated, -1
seller, 0 none), ``trade_price`` (> 0; empty = the touch it hit). A row with an empty
``trade_qty`` has no print; a value that does not parse is a ``RowError`` of its line.

Readers stream (CSV row by row, Parquet batch by batch), so memory does not grow with
the file. Every row problem raises ``RowError`` whose text is what the user sees next to
the line number.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from services.feature_bus.quality import static_problem
from shared.messages import RawQuote

Kind = Literal["quotes", "bars"]
QUOTE_COLUMNS = ("ts", "symbol", "bid", "ask", "bid_size", "ask_size")
BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
MIN_EPOCH_NS = 10**15  # smaller integers are seconds or milliseconds, not nanoseconds
_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RowError(ValueError):
    """Why a row was skipped."""


def detect_kind(columns: list[str]) -> Kind:
    cols = {c.strip() for c in columns}
    if set(QUOTE_COLUMNS) <= cols:
        return "quotes"
    if set(BAR_COLUMNS) <= cols:
        return "bars"
    missing_q = [c for c in QUOTE_COLUMNS if c not in cols]
    missing_b = [c for c in BAR_COLUMNS if c not in cols]
    raise RowError(
        f"columns {sorted(cols)}: need quotes (missing {missing_q}) or bars (missing {missing_b})"
    )


def parse_ts(raw: Any) -> int:
    """ISO-8601 (naive = UTC, up to nanosecond fractions) or integer epoch ns -> epoch ns."""
    if isinstance(raw, datetime):
        dt = raw if raw.tzinfo else raw.replace(tzinfo=UTC)
        return (dt - _EPOCH) // _MICRO * 1000
    if isinstance(raw, int) and not isinstance(raw, bool):
        ns = raw
    else:
        text = str(raw).strip() if raw is not None else ""
        if not text:
            raise RowError("ts: empty")
        if text.isdigit():
            ns = int(text)
        else:
            return _parse_iso(text)
    if ns < MIN_EPOCH_NS:
        raise RowError(f"ts: {ns} is not epoch nanoseconds (seconds or milliseconds?)")
    return ns


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _parse_iso(text: str) -> int:
    extra_ns = 0
    m = _FRACTION.match(text)
    if m:
        digits = (m.group(2) + "000000000")[:9]
        extra_ns = int(digits)
        text = m.group(1) + m.group(3)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"ts: {text[:40]!r} is neither ISO-8601 nor epoch ns") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // _MICRO * 1000 + extra_ns


def _number(row: Mapping[str, Any], key: str) -> float:
    raw = row.get(key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise RowError(f"{key}: empty")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise RowError(f"{key}: not a number ({str(raw)[:40]!r})") from None


def row_to_quote(
    row: Mapping[str, Any], kind: Kind, bar_spread_bps: float, line: int, session: str
) -> RawQuote:
    symbol = str(row.get("symbol") or "").strip()
    if not symbol:
        raise RowError("symbol: empty")
    if len(symbol) > 64:
        raise RowError("symbol: longer than 64 characters")
    ts_ns = parse_ts(row.get("ts"))
    volume: float | None = None
    o: float | None = None
    h: float | None = None
    lo: float | None = None
    if kind == "quotes":
        bid, ask = _number(row, "bid"), _number(row, "ask")
        bid_size, ask_size = _number(row, "bid_size"), _number(row, "ask_size")
    else:
        bo, bh, bl, c = (_number(row, k) for k in ("open", "high", "low", "close"))
        volume = _number(row, "volume")
        if not all(math.isfinite(x) for x in (bo, bh, bl, c, volume)):
            raise RowError("bar: non-finite value")
        if min(bo, bh, bl, c) <= 0:
            raise RowError(f"bar: non-positive price (open={bo} high={bh} low={bl} close={c})")
        if bh < max(bo, c, bl) or bl > min(bo, c):
            raise RowError(f"bar: inconsistent (open={bo} high={bh} low={bl} close={c})")
        o, h, lo = bo, bh, bl
        if volume < 0:
            raise RowError(f"bar: negative volume {volume}")
        half = c * bar_spread_bps / 2e4
        bid, ask = c - half, c + half
        bid_size = ask_size = volume / 2.0
    problem = static_problem(bid, ask, bid_size, ask_size)
    if problem:
        raise RowError(problem)
    trade_qty, trade_side, trade_price = _print(row)
    return RawQuote(
        trace_ts_ns=0,
        symbol=symbol,
        ts_ns=ts_ns,
        bid=bid,
        ask=ask,
        bid_size=bid_size,
        ask_size=ask_size,
        volume=volume,
        open=o,
        high=h,
        low=lo,
        source="replay",
        session=session,
        line=line,
        trade_qty=trade_qty,
        trade_side=trade_side,
        trade_price=trade_price,
        trade_count=1 if trade_qty else 0,  # a file's row is one print (or none)
    )


def _blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _print(row: Mapping[str, Any]) -> tuple[float | None, int, float | None]:
    """(trade_qty, trade_side, trade_price) of the optional print columns."""
    if _blank(row.get("trade_qty")):
        return None, 0, None
    qty = _number(row, "trade_qty")
    if not (0.0 <= qty < math.inf):
        raise RowError(f"trade_qty: {qty} is not a finite volume >= 0")
    raw_side = row.get("trade_side")
    side = 0
    if not _blank(raw_side):
        value = _number(row, "trade_side")
        if value not in (-1.0, 0.0, 1.0):
            raise RowError(f"trade_side: {str(raw_side)[:40]!r} is not -1, 0 or 1")
        side = int(value)
    if qty > 0 and side == 0:
        raise RowError("trade_side: a print of trade_qty > 0 needs side -1 or 1")
    price: float | None = None
    if not _blank(row.get("trade_price")):
        price = _number(row, "trade_price")
        if not (0.0 < price < math.inf):
            raise RowError(f"trade_price: {price} is not a finite price > 0")
    return qty, side, price


def read_rows(
    path: Path, batch_rows: int = 1_000
) -> tuple[Kind, Iterator[tuple[int, dict[str, Any]]]]:
    """(kind, iterator of (line or row number, row)); raises RowError for a bad header."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return _parquet(path, batch_rows)
    return _csv(path)


def _csv(path: Path) -> tuple[Kind, Iterator[tuple[int, dict[str, Any]]]]:
    # A stray non-UTF-8 byte must cost its row (reported with the line number when its
    # value does not parse), not stop the whole replay with a decode error.
    fh = path.open(newline="", encoding="utf-8", errors="replace")
    reader = csv.DictReader(fh)
    try:
        kind = detect_kind(list(reader.fieldnames or []))
    except RowError:
        fh.close()
        raise

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        with fh:
            for row in reader:
                yield reader.line_num, row

    return kind, rows()


def _parquet(path: Path, batch_rows: int) -> tuple[Kind, Iterator[tuple[int, dict[str, Any]]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RowError("Parquet needs pyarrow: pip install 'edgebus[parquet]'") from None
    pf = pq.ParquetFile(path)
    kind = detect_kind(list(pf.schema_arrow.names))

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        n = 0
        for batch in pf.iter_batches(batch_size=batch_rows):
            for row in batch.to_pylist():
                n += 1
                yield n, row

    return kind, rows()


def count_rows(path: Path) -> int | None:
    """Data rows, cheaply (Parquet metadata; CSV newlines minus the header)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return None
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return max(0, n - 1)
