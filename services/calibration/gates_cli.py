"""`edgebus calibrate-gates [--ticks N] [--seeds 1,2] [--train-frac 0.5] [--min-trades 5]
[--grid KEY=v1,v2,...]... [--conf-dir DIR]` (docs/governors.md "Gate calibration").

The I/O shell of services/calibration/gate_search.py: loads the components' configs (conf/,
or --conf-dir), makes each seed's synthetic quotes, runs the grid search and prints one JSON
document on stdout (keys: component, seeds, ticks, train_frac, split, score, min_trades,
grid, baseline, points, chosen). Without --grid the default grid is
costs.safety_margin_bps in {0, 2, 4, 8} x confidence_levels.medium in {0, 0.5, 1}; each
--grid replaces it (the keys given are the grid). Every run of the grid is a
backtest of N ticks per seed: defaults are small (5,000 ticks, 2 seeds, 24 backtests, under
a minute). Exit 0 done, 1 a config error (an unknown key, a value its rule rejects), 2 a
usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from services.backtest import runner
from services.calibration import gate_search as gs
from services.feature_bus.config import FeatureBusConfig
from shared.config import ConfigError


def _seeds(text: str) -> list[int]:
    try:
        seeds = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers: {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("give at least one seed")
    return seeds


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgebus calibrate-gates",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ticks", type=int, default=5_000, help="synthetic quotes per seed")
    p.add_argument("--seeds", type=_seeds, default=[1, 2], help="comma-separated, e.g. 1,2,3")
    p.add_argument("--train-frac", type=float, default=0.5, help="the time split, in (0, 1)")
    p.add_argument("--min-trades", type=int, default=5, help="train round trips to be chosen")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=v1,v2,...",
        help="a risk_harmoniser key (dotted) and its values; repeatable",
    )
    p.add_argument("--conf-dir", help="directory with component YAMLs overriding conf/")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.ticks < 2:
        parser.error("--ticks must be >= 2")
    if not (0.0 < args.train_frac < 1.0):
        parser.error("--train-frac must be in (0, 1)")
    if args.min_trades < 0:
        parser.error("--min-trades must be >= 0")
    try:
        grid = gs.parse_grid(args.grid) if args.grid else dict(gs.DEFAULT_GRID)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        configs = runner.load_configs(Path(args.conf_dir) if args.conf_dir else None)
        # a bad key or value fails here, before any backtest runs
        for point in gs.grid_points(grid):
            gs.with_overrides(configs[gs.COMPONENT], point)
    except (ConfigError, OSError) as exc:
        print(f"edgebus calibrate-gates: config: {exc}", file=sys.stderr)
        return 1
    fb = configs["feature_bus"]
    assert isinstance(fb, FeatureBusConfig)
    quotes = {seed: runner.synthetic_quotes(fb, args.ticks, seed) for seed in args.seeds}
    doc = gs.search(configs, quotes, grid, args.train_frac, args.min_trades)
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
