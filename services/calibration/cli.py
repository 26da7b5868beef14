"""`edgebus calibrate --predictions FILE [--buckets 10] [--strategy uniform|quantile]
[--method buckets|isotonic|platt]` (docs/calibration.md).

The I/O shell of services/calibration/calibrator.py. FILE is a CSV with header
``confidence,outcome`` (confidence in [0, 1]; outcome 0 or 1, a hit or a miss); a row that
is not is reported on stderr as ``line N: reason (skipped)``. Prints one JSON document:
the reliability table of every valid row and its ECE, MCE and Brier score. With --method,
the calibrator is fitted on the first 70 % of the valid rows in file order and scored on
the last 30 % (a held-out split, never shuffled: a file in time order tests the
calibrator on the future); ``calibrated`` holds the held-out metrics after calibration,
``raw_holdout`` the same rows' metrics before. Exit 0 done, 1 an unreadable file or no
valid rows (fewer than 2 with --method), 2 a usage error.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from services.calibration import calibrator as cal

MAX_REPORTED_ROWS = 20
FIT_FRACTION = 0.7


@dataclass
class Predictions:
    confidence: list[float] = field(default_factory=list)
    outcome: list[float] = field(default_factory=list)
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def _confidence(text: str) -> float:
    """A finite float in [0, 1], else ValueError with the reason."""
    x = float(text)
    if not math.isfinite(x) or not 0.0 <= x <= 1.0:
        raise ValueError(f"confidence {text.strip()!r} is not in [0, 1]")
    return x


def _outcome(text: str) -> float:
    """0 or 1 (as written: "0", "1", "1.0"), else ValueError with the reason."""
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if x not in (0.0, 1.0):
        raise ValueError(f"outcome {text.strip()!r} is not 0 or 1")
    return x


def read_predictions_csv(path: Path) -> Predictions:
    """Rows of ``confidence,outcome`` (other columns ignored); bad rows by line number."""
    out = Predictions()
    with path.open(newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's BOM too
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = {"confidence", "outcome"} - set(header)
        if missing:
            raise ValueError(f"{path}: header lacks {', '.join(sorted(missing))}")
        i_conf, i_out = header.index("confidence"), header.index("outcome")
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            try:
                conf = _confidence(row[i_conf])
                hit = _outcome(row[i_out])
            except IndexError:
                out.bad_rows.append((line, "missing a column"))
                continue
            except ValueError as exc:
                out.bad_rows.append((line, str(exc)))
                continue
            out.confidence.append(conf)
            out.outcome.append(hit)
    return out


def _parser() -> argparse.ArgumentParser:
    """The options; argparse exits 2 on a usage error."""
    p = argparse.ArgumentParser(prog="edgebus calibrate", description=__doc__)
    p.add_argument("--predictions", type=Path, required=True, help="CSV: confidence,outcome")
    p.add_argument("--buckets", type=int, default=cal.DEFAULT_BUCKETS)
    p.add_argument("--strategy", choices=cal.STRATEGIES, default="uniform")
    p.add_argument("--method", choices=tuple(cal.CALIBRATORS), default=None)
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read, report bad rows, and build the JSON document (the module docstring says what)."""
    preds = read_predictions_csv(args.predictions)
    for line, reason in preds.bad_rows[:MAX_REPORTED_ROWS]:
        print(f"line {line}: {reason} (skipped)", file=sys.stderr)
    if len(preds.bad_rows) > MAX_REPORTED_ROWS:
        print(f"... {len(preds.bad_rows)} bad rows in all", file=sys.stderr)
    n = len(preds.confidence)
    if n == 0:
        raise ValueError(f"{args.predictions}: no valid rows")
    c = np.asarray(preds.confidence, dtype=np.float64)
    y = np.asarray(preds.outcome, dtype=np.float64)
    doc = cal.reliability(c, y, args.buckets, args.strategy).as_dict()
    doc["bad_rows"] = len(preds.bad_rows)
    if args.method is not None:
        if n < 2:
            raise ValueError(f"--method needs at least 2 valid rows to split, not {n}")
        n_fit = min(max(int(FIT_FRACTION * n), 1), n - 1)
        fitted = cal.calibrator_for(args.method)().fit(c[:n_fit], y[:n_fit])
        c_hold, y_hold = c[n_fit:], y[n_fit:]
        doc["method"] = args.method
        doc["fit_rows"] = n_fit
        doc["holdout_rows"] = n - n_fit
        doc["calibrator"] = fitted.to_dict()
        doc["raw_holdout"] = cal.reliability(c_hold, y_hold, args.buckets, args.strategy).as_dict()
        doc["calibrated"] = cal.reliability(
            fitted.transform(c_hold), y_hold, args.buckets, args.strategy
        ).as_dict()
    return doc


def main(argv: list[str] | None = None) -> int:
    """`edgebus calibrate ARGS`: 0 done, 1 unreadable input or no valid rows, 2 usage."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on a usage error, 0 after --help
        return int(exc.code or 0)
    if args.buckets < 1:
        print("edgebus calibrate: --buckets must be >= 1", file=sys.stderr)
        return 2
    try:
        doc = run(args)
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        print(f"edgebus calibrate: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
