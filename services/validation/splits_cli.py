"""`edgebus validate walk-forward | cpcv --returns FILE | --backtest DIR [options]`.

The inputs are read as the permutation test reads them (permutation_cli.py: a CSV with
``ts, position, asset_return``, or a backtest's output); a bad row is reported on stderr
with its line number and skipped. The strategy return of a period is position *
asset_return. One JSON document on stdout. Exit codes: 0 done, 1 unreadable input, 2 a
usage error. The maths is in walk_forward.py and cpcv.py; this module reads and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orjson

from services.validation import cpcv, permutation_cli, walk_forward
from services.validation import permutation as perm


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"edgebus validate {prog}", description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--returns", type=Path, help="CSV: ts, position, asset_return")
    src.add_argument("--backtest", type=Path, help="an `edgebus backtest` output directory")
    p.add_argument(
        "--periods-per-year",
        type=float,
        default=None,
        help="annualisation P of the Sharpe (default: the observed rate, (n - 1) / years)",
    )
    return p


def _load(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, float]:
    """(ts_ns in time order, strategy returns position * asset_return, P)."""
    if args.returns:
        series = permutation_cli.read_returns_csv(args.returns)
    else:
        series = permutation_cli.read_backtest_dir(args.backtest)
    for line, reason in series.bad_rows[: permutation_cli.MAX_REPORTED_ROWS]:
        print(f"line {line}: {reason} (skipped)", file=sys.stderr)
    if len(series.bad_rows) > permutation_cli.MAX_REPORTED_ROWS:
        print(f"... {len(series.bad_rows)} bad rows in all", file=sys.stderr)
    if not series.ts_ns:
        raise ValueError("no valid row")
    ts = np.asarray(series.ts_ns, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    r = np.asarray(series.position, dtype=float) * np.asarray(series.asset_return, dtype=float)
    ts = ts[order]
    return ts, r[order], args.periods_per_year or perm.periods_per_year_from_ts(ts)


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
        train_days=base.train_days if args.train_days is None else args.train_days,
        test_days=base.test_days if args.test_days is None else args.test_days,
        step_days=base.step_days if args.step_days is None else args.step_days,
        purge_days=base.purge_days if args.purge_days is None else args.purge_days,
    )
    try:
        ts_ns, r, ppy = _load(args)
    except (OSError, ValueError, StopIteration) as exc:
        print(f"edgebus validate: {exc}", file=sys.stderr)
        return 1
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
    try:
        ts_ns, r, ppy = _load(args)
    except (OSError, ValueError, StopIteration) as exc:
        print(f"edgebus validate: {exc}", file=sys.stderr)
        return 1
    try:
        report = cpcv.cpcv_report(
            r, args.folds, args.test_folds, args.purge, args.embargo, args.fit, ppy
        )
    except ValueError as exc:
        print(f"edgebus validate cpcv: {exc}", file=sys.stderr)
        return 2
    _print({"test": "cpcv", **report})
    return 0


def _print(doc: dict[str, object]) -> None:
    # orjson prints NaN and inf as null, as the permutation test's output
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode() + "\n")
