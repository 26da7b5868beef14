"""`edgebus validate walk-forward | cpcv --returns FILE [options]`: JSON on stdout.

FILE is a CSV with a header ``ts, position, asset_return`` (the position held over the
period and the asset's return over it; ts in ns since the epoch or ISO-8601 UTC). The
strategy return of a row is position * asset_return. A bad row is reported on stderr with
its line number and skipped. Exit codes: 0 done, 1 unreadable input, 2 usage error.
The maths is in walk_forward.py and cpcv.py; this module only reads and prints.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import TextIO

import numpy as np

from services.validation import cpcv, walk_forward

SECONDS_PER_YEAR = 365.25 * 86_400.0
REQUIRED_COLUMNS = ("ts", "position", "asset_return")


class InputError(Exception):
    """The file cannot be used at all (missing, no header, no valid row)."""


def read_returns_csv(path: Path, err: TextIO) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns sorted, strategy returns position * asset_return) from the CSV at ``path``."""
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from exc
    ts: list[int] = []
    rets: list[float] = []
    with handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InputError(f"{path}: header lacks {', '.join(missing)}")
        reader.fieldnames = header
        for row in reader:
            line = reader.line_num
            try:
                t = _parse_ts(row["ts"])
                pos = float(row["position"])
                ret = float(row["asset_return"])
            except (TypeError, ValueError) as exc:
                print(f"{path}:{line}: bad row skipped: {exc}", file=err)
                continue
            if not (math.isfinite(pos) and math.isfinite(ret)):
                print(f"{path}:{line}: bad row skipped: non-finite value", file=err)
                continue
            ts.append(t)
            rets.append(pos * ret)
    if not ts:
        raise InputError(f"{path}: no valid row")
    ts_ns = np.asarray(ts, dtype=np.int64)
    r = np.asarray(rets, dtype=float)
    order = np.argsort(ts_ns, kind="stable")
    if np.any(order != np.arange(order.size)):
        print(f"{path}: rows not in time order; sorted by ts", file=err)
    return ts_ns[order], r[order]


def _parse_ts(text: str | None) -> int:
    if text is None or not text.strip():
        raise ValueError("empty ts")
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def periods_per_year(ts_ns: np.ndarray) -> float:
    """(n - 1) / span in years: the observed sampling rate (252-ish for weekday bars)."""
    if ts_ns.size < 2 or ts_ns[-1] <= ts_ns[0]:
        return 1.0
    return (ts_ns.size - 1) / ((int(ts_ns[-1]) - int(ts_ns[0])) / 1e9 / SECONDS_PER_YEAR)


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"edgebus validate {prog}")
    p.add_argument("--returns", type=Path, required=True, help="CSV: ts, position, asset_return")
    p.add_argument(
        "--periods-per-year",
        type=float,
        default=None,
        help="annualisation of the Sharpe (default: the file's own rate, (n-1)/years)",
    )
    return p


def walk_forward_main(argv: list[str]) -> int:
    p = _parser("walk-forward")
    p.add_argument("--preset", choices=sorted(walk_forward.PRESETS), default="seed000")
    p.add_argument("--mode", choices=("rolling", "expanding"), default="rolling")
    p.add_argument("--train-days", type=int, help="override the preset")
    p.add_argument("--test-days", type=int, help="override the preset")
    p.add_argument("--step-days", type=int, help="override the preset")
    p.add_argument("--purge-days", type=int, help="override the preset")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 after --help, 2 on a usage error
        return int(exc.code or 0)
    base = walk_forward.PRESETS[args.preset]
    preset = walk_forward.WalkForwardPreset(
        train_days=args.train_days or base.train_days,
        test_days=args.test_days or base.test_days,
        step_days=args.step_days or base.step_days,
        purge_days=base.purge_days if args.purge_days is None else args.purge_days,
    )
    loaded = _load(args.returns)
    if loaded is None:
        return 1
    ts_ns, r = loaded
    ppy = args.periods_per_year or periods_per_year(ts_ns)
    try:
        report = walk_forward.walk_forward_report(ts_ns, r, preset, args.mode, ppy)
    except ValueError as exc:
        print(f"edgebus validate walk-forward: {exc}", file=sys.stderr)
        return 2
    _print({"test": "walk-forward", "preset": args.preset, "n_obs": int(r.size), **report})
    return 0


def cpcv_main(argv: list[str]) -> int:
    p = _parser("cpcv")
    p.add_argument("--folds", type=int, default=6, help="N, number of folds")
    p.add_argument("--test-folds", type=int, default=2, help="k, test folds per split")
    p.add_argument("--purge", type=int, default=0, help="observations purged each side")
    p.add_argument("--embargo", type=int, default=0, help="observations embargoed after")
    p.add_argument("--fit", choices=sorted(cpcv.FITS), default="none")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 after --help, 2 on a usage error
        return int(exc.code or 0)
    loaded = _load(args.returns)
    if loaded is None:
        return 1
    ts_ns, r = loaded
    ppy = args.periods_per_year or periods_per_year(ts_ns)
    try:
        report = cpcv.cpcv_report(
            r, args.folds, args.test_folds, args.purge, args.embargo, args.fit, ppy
        )
    except ValueError as exc:
        print(f"edgebus validate cpcv: {exc}", file=sys.stderr)
        return 2
    _print({"test": "cpcv", **report})
    return 0


def _load(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        return read_returns_csv(path, sys.stderr)
    except InputError as exc:
        print(f"edgebus validate: {exc}", file=sys.stderr)
        return None


def _print(doc: dict[str, object]) -> None:
    # NaN/inf are not JSON: print them as null
    print(json.dumps(_finite(doc), indent=2))


def _finite(x: object) -> object:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x
